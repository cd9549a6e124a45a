package depot

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:F5F1 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:F5F1 00000000000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
   2: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
`

func TestListenInodes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		port    int
		want    []uint64
		wantErr string
	}{
		{name: "listening", in: procNetTCP6, port: 62961, want: []uint64{123456}},
		{name: "ssh", in: procNetTCP6, port: 22, want: []uint64{777}},
		{name: "nothing", in: procNetTCP6, port: 1},
		{name: "short line", in: "sl local\n 0: 0100007F:0016 x 0A\n", port: 22, wantErr: "line 2: 4 fields"},
		{name: "bad port", in: "sl\n 0: 0100007F:ZZZZ 0 0A 0 0 0 0 0 5\n", port: 22, wantErr: `line 2: local port "ZZZZ"`},
		{name: "bad inode", in: " 0: 0100007F:0016 0 0A 0 0 0 0 0 x5\n", port: 22, wantErr: `line 1: inode "x5"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listenInodes(strings.NewReader(tt.in), tt.port)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// The real tables of this machine parse.
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		if _, err := listenInodes(fh, 22); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		fh.Close()
	}
}

func FuzzListenInodes(f *testing.F) {
	f.Add(procNetTCP6, 62961)
	f.Add(" 0: 0100007F:0016 00000000:0000 0A 0 0 0 0 0 5\n", 22)
	f.Fuzz(func(t *testing.T, in string, port int) {
		_, _ = listenInodes(strings.NewReader(in), port)
	})
}

func FuzzParseEvents(f *testing.F) {
	f.Add([]byte(`{"time":"2025-01-02T03:04:05Z","node":"x","state":"deploy","phase":"download","bytes":10}`))
	f.Add([]byte(`[{"message":"a"},{"phase":"installed"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := ParseEvents(data)
		if err == nil {
			for _, ev := range evs {
				if ev.State == "" && ev.Phase == "" && ev.Message == "" {
					t.Fatal("empty event accepted")
				}
			}
		}
	})
}
