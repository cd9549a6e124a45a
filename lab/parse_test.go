package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFwupdHistory(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []FwupdRelease
		wantErr string
	}{
		{
			name: "one flash",
			in:   readTestdata(t, "history.json"),
			want: []FwupdRelease{{
				Device:        "Integrated Webcam",
				DeviceID:      "08d460be0f1f9f128413f816022a6439e0078018",
				GUIDs:         []string{FwupdDeviceGUID},
				Plugin:        "test",
				VersionBefore: "1.2.2",
				Version:       "1.2.4",
				AppstreamID:   "org.fwupd.fakedevice.firmware",
				State:         FwupdStateSuccess,
				Created:       time.Unix(1795269458, 0).UTC(),
			}},
		},
		{name: "no history", in: readTestdata(t, "no-history.json")},
		{name: "progress before JSON", in: append([]byte("Loading…\n"), readTestdata(t, "no-history.json")...)},
		{name: "empty device list", in: []byte(`{"Devices":[]}`)},
		{name: "other error", in: []byte(`{"Error":{"Domain":"FwupdError","Code":3,"Message":"Permission denied"}}`), wantErr: "Permission denied"},
		{name: "not JSON", in: []byte("segmentation fault\n"), wantErr: "no JSON object"},
		{name: "empty", in: nil, wantErr: "no JSON object"},
		{name: "truncated", in: []byte(`{"Devices":[{"Name":"x"`), wantErr: "get-history JSON"},
		{name: "device without name", in: []byte(`{"Devices":[{"Version":"1"}]}`), wantErr: "device 0 has no Name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFwupdHistory(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseFwupdHistory(f *testing.F) {
	f.Add(readTestdata(f, "history.json"))
	f.Add(readTestdata(f, "no-history.json"))
	f.Add([]byte(`{"Devices":[{"Name":"a","Releases":[]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		rs, err := parseFwupdHistory(in)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Device == "" {
				t.Fatalf("release without device accepted: %+v", r)
			}
		}
	})
}

func TestParseListeners(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Listener
		wantErr string
	}{
		{
			name: "ss output",
			in:   string(readTestdata(t, "ss.txt")),
			want: []Listener{
				{Local: "0.0.0.0:22", Programs: []string{"sshd"}},
				{Local: "127.0.0.1:8080", Programs: []string{"python3"}},
				{Local: "[::]:22", Programs: []string{"sshd"}},
				{Local: "0.0.0.0%eth0:9000"},
			},
		},
		{name: "empty", in: ""},
		{name: "short line", in: "LISTEN 0 128\n", wantErr: "want at least 5 columns"},
		{name: "not listening", in: "ESTAB 0 0 1.2.3.4:22 5.6.7.8:1000\n", wantErr: `state "ESTAB"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseListeners(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("listeners (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseListeners(f *testing.F) {
	f.Add(string(readTestdata(f, "ss.txt")))
	f.Add("LISTEN 0 1 a b users:((\"x\",pid=1,fd=2))")
	f.Fuzz(func(t *testing.T, in string) {
		ls, err := parseListeners(in)
		if err != nil {
			return
		}
		for _, l := range ls {
			if l.Local == "" || strings.ContainsAny(l.Local, " \t\n") {
				t.Fatalf("bad local address %q", l.Local)
			}
		}
	})
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    float64
		wantErr bool
	}{
		{name: "mbit", in: "20mbit", want: 2.5e6},
		{name: "kbit fraction", in: "1.5kbit", want: 187.5},
		{name: "bytes", in: "100kbps", want: 1e5},
		{name: "no unit", in: "20", wantErr: true},
		{name: "unknown unit", in: "20mib", wantErr: true},
		{name: "zero", in: "0mbit", wantErr: true},
		{name: "option injection", in: "20mbit burst 1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRate(tt.in)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.in) {
					t.Fatalf("error = %v, want one naming %q", err, tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestEnableTestDevices(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "debian default", in: "[fwupd]\n# use `man 5 fwupd.conf` for documentation\n", want: "[fwupd]\nTestDevices=true\n# use `man 5 fwupd.conf` for documentation\n"},
		{name: "already set false", in: "[fwupd]\nTestDevices=false\nIdleTimeout=7200\n", want: "[fwupd]\nTestDevices=true\nIdleTimeout=7200\n"},
		{name: "empty", in: "", want: "[fwupd]\nTestDevices=true\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := enableTestDevices(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "ok", opts: Options{Nodes: 3, IPv6Only: []int{2}}},
		{name: "no nodes", opts: Options{}, wantErr: "Nodes 0"},
		{name: "too many", opts: Options{Nodes: MaxNodes + 1}, wantErr: "Nodes 251"},
		{name: "bad position", opts: Options{Nodes: 2, IPv6Only: []int{2}}, wantErr: "IPv6Only position 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSnapshotDiff(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	base := Snapshot{
		Files: []File{
			{Path: "/home/fukey", Mode: 0o700 | 1<<31, Owner: "fukey", ModTime: t0},
			{Path: "/tmp/keep", Mode: 0o644, Size: 3, Owner: "root", ModTime: t0},
		},
		Processes: []Process{{PID: 10, User: "root", Cmdline: "sleep 1"}},
		Listeners: []Listener{{Local: "0.0.0.0:22", Programs: []string{"sshd"}}},
		Nftables:  "table inet t {\n\tchain c {\n\t\ttcp dport 1 counter packets 0 bytes 0 drop\n\t}\n}\n",
		Iptables:  "# Generated by iptables-save v1.8.9 on Fri\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
	}
	tests := []struct {
		name   string
		change func(s *Snapshot)
		want   []string
	}{
		{name: "nothing", change: func(*Snapshot) {}},
		{name: "dir time and counters change", change: func(s *Snapshot) {
			s.Files[0].ModTime = t0.Add(time.Hour)
			s.Nftables = strings.Replace(s.Nftables, "packets 0 bytes 0", "packets 7 bytes 420", 1)
			s.Iptables = "# Generated by iptables-save v1.8.9 on Sat\n*filter\n:INPUT ACCEPT [5:300]\nCOMMIT\n"
		}},
		{name: "removed things are not listed", change: func(s *Snapshot) {
			s.Files = s.Files[:1]
			s.Processes = nil
		}},
		{name: "new file", change: func(s *Snapshot) {
			s.Files = append(s.Files, File{Path: "/tmp/x", Mode: 0o600, Size: 5, Owner: "fukey"})
		}, want: []string{"new file /tmp/x (-rw------- fukey, 5 bytes)"}},
		{name: "changed file", change: func(s *Snapshot) { s.Files[1].Size = 4 }, want: []string{"changed file /tmp/keep (4 bytes"}},
		{name: "new process", change: func(s *Snapshot) {
			s.Processes = append(s.Processes, Process{PID: 11, User: "fukey", Cmdline: "sleep 99"})
		}, want: []string{"new process 11 (fukey): sleep 99"}},
		{name: "new listener", change: func(s *Snapshot) {
			s.Listeners = append(s.Listeners, Listener{Local: "[::]:63001", Programs: []string{"engine"}})
		}, want: []string{"new listener [::]:63001 (engine)"}},
		{name: "new nft rule", change: func(s *Snapshot) {
			s.Nftables = strings.Replace(s.Nftables, "drop\n", "drop\n\t\ttcp dport 2 accept\n", 1)
		}, want: []string{"new nftables line: tcp dport 2 accept"}},
		{name: "new iptables rule", change: func(s *Snapshot) {
			s.Iptables = strings.Replace(s.Iptables, "COMMIT", "-A INPUT -p tcp --dport 63001 -j ACCEPT\nCOMMIT", 1)
		}, want: []string{"new iptables line: -A INPUT -p tcp --dport 63001 -j ACCEPT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := base
			after.Files = append([]File(nil), base.Files...)
			after.Processes = append([]Process(nil), base.Processes...)
			after.Listeners = append([]Listener(nil), base.Listeners...)
			tt.change(&after)
			got := after.Diff(base)
			if len(tt.want) == 0 {
				if got != "" {
					t.Fatalf("Diff = %q, want none", got)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Diff = %q, want %d lines like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}
