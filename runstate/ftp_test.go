package runstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestFTPCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	c := FTPCredentials{RunID: "run1", User: "fleetup-1a2b", Password: "s3cr=t", Port: 63006}
	path, err := WriteFTPCredentials(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	if path != FTPCredentialsPath(dir, "run1") || filepath.Base(path) != "ftp-run1.credentials" {
		t.Errorf("path %s", path)
	}
	data, _ := os.ReadFile(path)
	for _, line := range []string{"user=fleetup-1a2b\n", "password=s3cr=t\n", "port=63006\n", fmt.Sprintf("pid=%d\n", os.Getpid())} {
		if !strings.Contains(string(data), line) {
			t.Errorf("file lacks %q:\n%s", line, data)
		}
	}
	// Exclusive: a second write of the run fails and changes nothing.
	if _, err := WriteFTPCredentials(dir, FTPCredentials{RunID: "run1", User: "x", Password: "y"}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second write: %v, want ErrExist", err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(data) {
		t.Errorf("file changed by a refused write:\n%s", again)
	}
	got, err := ReadFTPCredentials(dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadFTPCredentials: %+v, %v", got, err)
	}
	want := c
	want.Owner, want.File, want.Liveness = Self(), path, Self().Check()
	if diff := cmp.Diff(&want, got[0]); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	if removed, err := RemoveStaleFTPCredentials(dir); err != nil || len(removed) != 0 {
		t.Errorf("a live run's credentials: removed %q, %v", removed, err)
	}
	if err := RemoveFTPCredentials(path); err != nil {
		t.Fatal(err)
	}
	if err := RemoveFTPCredentials(path); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("left: %q", left)
	}
	for _, bad := range []FTPCredentials{{RunID: "a/b", User: "u", Password: "p"}, {RunID: "r", User: "u\nx", Password: "p"}, {RunID: "r", User: "u"}} {
		if _, err := WriteFTPCredentials(dir, bad); err == nil {
			t.Errorf("WriteFTPCredentials(%+v) succeeded", bad)
		}
	}
}

// TestStaleFTPCredentials: the files of dead managers go, a reused pid
// included; a live one's stays; an unparsable one is named and stays.
func TestStaleFTPCredentials(t *testing.T) {
	dir := t.TempDir()
	me := Self()
	dead := deadPID(t)
	for id, o := range map[string]Owner{
		"live":   me,
		"reused": {PID: me.PID, Start: me.Start + 1},
		"dead":   {PID: dead, Start: me.Start},
	} {
		if _, err := WriteFTPCredentials(dir, FTPCredentials{RunID: id, User: "u", Password: "p", Port: 63006, Owner: o}); err != nil {
			t.Fatal(err)
		}
	}
	// Written before start times were recorded: the pid alone decides.
	legacy := func(id string, pid int) {
		body := fmt.Sprintf("# FTP login for switches in fleetup run %s; removed when the run ends\nuser=u\npassword=p\nport=63006\npid=%d\n", id, pid)
		os.WriteFile(FTPCredentialsPath(dir, id), []byte(body), 0o600)
	}
	legacy("legacy-live", me.PID)
	legacy("legacy-dead", dead)
	bad := FTPCredentialsPath(dir, "garbled")
	os.WriteFile(bad, []byte("user=u\npassword=p\npid=abc\n"), 0o600)
	other := FTPCredentialsPath(dir, "other")
	os.WriteFile(other, []byte("run=live\nuser=u\npassword=p\npid=1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("x"), 0o600)

	removed, err := RemoveStaleFTPCredentials(dir)
	for _, want := range []string{bad, other, `holds run "live", not "other"`, "line 3"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to name %s", err, want)
		}
	}
	var gone []string
	for _, r := range removed {
		gone = append(gone, strings.Fields(r)[2])
	}
	wantGone := []string{FTPCredentialsPath(dir, "dead"), FTPCredentialsPath(dir, "legacy-dead"), FTPCredentialsPath(dir, "reused")}
	if diff := cmp.Diff(wantGone, gone, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("removed (-want +got):\n%s\n%q", diff, removed)
	}
	for _, r := range removed {
		if strings.Contains(r, "(run reused:") && !strings.Contains(r, "the pid was reused") {
			t.Errorf("%q does not say the pid was reused", r)
		}
	}
	want := []string{"ftp-garbled.credentials", "ftp-legacy-live.credentials", "ftp-live.credentials", "ftp-other.credentials", "unrelated.txt"}
	if diff := cmp.Diff(want, listDir(t, dir)); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
}

func TestParseFTPCredentials(t *testing.T) {
	tests := []struct {
		name, in, want string // want: error substring, "" for success
	}{
		{"full", "# c\nrun=r\nuser=u\npassword=p=q\nport=21\npid=3\nproc_start=9\n", ""},
		{"legacy", "user=u\npassword=p\nport=21\npid=3\n", ""},
		{"crlf", "user=u\r\npassword=p\r\npid=3\r\n", ""},
		{"no pid", "user=u\npassword=p\n", "manager pid 0"},
		{"no password", "user=u\npid=3\n", "no user or no password"},
		{"unknown key", "user=u\npassword=p\npid=3\nhost=x\n", `unknown key "host"`},
		{"twice", "user=u\nuser=v\npassword=p\npid=3\n", "user given twice"},
		{"no equals", "user=u\npassword\npid=3\n", "line 2: not key=value"},
		{"bad start", "user=u\npassword=p\npid=3\nproc_start=-1\n", "line 4"},
		{"bad port", "user=u\npassword=p\npid=3\nport=70000\n", "port 70000 out of range"},
		{"another run", "run=s\nuser=u\npassword=p\npid=3\n", `holds run "s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFTPCredentials("r", []byte(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzParseFTPCredentials(f *testing.F) {
	f.Add([]byte("# c\nrun=r\nuser=u\npassword=p\nport=21\npid=3\nproc_start=9\n"))
	f.Add([]byte("user=u\npassword=p\npid=3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseFTPCredentials("r", data)
		if err != nil {
			return
		}
		if c.User == "" || c.Password == "" || c.Owner.PID <= 0 || c.RunID != "r" {
			t.Fatalf("accepted %+v", c)
		}
	})
}
