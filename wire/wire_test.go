package wire

import (
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
)

func TestReadInstallStream(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		err      string
	}{
		{"results", `{"event":{"component":"a","phase":"install"}}` + "\n" + `{"results":[{"component_id":"a","phase":"installed"}],"done":true}` + "\n", 1, ""},
		{"ends early", `{"event":{"component":"a","phase":"install"}}` + "\n", 0, "ended without results"},
		{"garbage", "HTTP/1.1 200 OK\n", 0, "install stream"},
		{"engine error", `{"error":"disk full"}` + "\n", 0, "disk full"},
		{"done without results", `{"done":true}` + "\n", 0, "without results"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := 0
			res, err := ReadInstallStream(strings.NewReader(tc.in), func(fleetup.Event) { events++ })
			if tc.err == "" && (err != nil || len(res) != tc.n) {
				t.Fatalf("got %v %v", res, err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// The install stream comes from the node: no input may crash the
// manager, and an answer is results or an error, never both or neither.
func FuzzReadInstallStream(f *testing.F) {
	f.Add(`{"event":{"component":"a","phase":"install","message":"x"}}` + "\n" + `{"results":[{"component_id":"a"}],"done":true}` + "\n")
	f.Add(`{"done":true,"results":null}`)
	f.Add(`{"event":null}` + "\n" + `{"error":""}`)
	f.Add("\x00\xff{")
	f.Fuzz(func(t *testing.T, in string) {
		res, err := ReadInstallStream(strings.NewReader(in), func(ev fleetup.Event) {
			if len(ev.Message) > 4096+len("…") {
				t.Fatalf("an event of %d bytes passed on", len(ev.Message))
			}
		})
		if (err == nil) == (res == nil) {
			t.Fatalf("results %v and error %v", res, err)
		}
	})
}
