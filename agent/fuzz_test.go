package agent

import (
	"path"
	"strings"
	"testing"
)

// The scout's output is the node's word: whatever it says, the manager
// never takes a directory that is not the run's own, and never panics.
func FuzzParseScout(f *testing.F) {
	f.Add("arch=x86_64\ndir=" + fakeDir)
	f.Add("arch=aarch64\nskip=/tmp: mounted noexec\nskip=/var/tmp: no such directory")
	f.Add("dir=/tmp/fleetup-" + fakeRun + ".Ab12Cd/../../etc")
	f.Add("arch=\x00\ndir=\n")
	f.Fuzz(func(t *testing.T, out string) {
		rep, err := parseScout(strings.Split(out, "\n"), fakeRun)
		if err != nil {
			if rep.Dir != "" {
				t.Fatalf("error %v, and yet a directory %q", err, rep.Dir)
			}
			return
		}
		if runDir(rep.Dir, fakeRun) != nil || path.Clean(rep.Dir) != rep.Dir || !strings.HasPrefix(path.Base(rep.Dir), "fleetup-"+fakeRun+".") {
			t.Fatalf("took %q as the run's directory", rep.Dir)
		}
	})
}

// The engine's start-up lines come from the node.
func FuzzStartLines(f *testing.F) {
	f.Add([]byte(`{"ready":{"port":62286,"pid":42,"dir":"` + fakeDir + `","firewall":["nft: accept"]},"swept":{"files":["/tmp/x"]}}`))
	f.Add([]byte(`{"dial":{"addr":"198.18.1.1:63002","status":"filtered","error":"i/o timeout"}}`))
	f.Add([]byte(`{"ready":{"port":0,"error":""}}`))
	f.Add([]byte(`{"ready":null,"dial":{}}`))
	f.Fuzz(func(t *testing.T, l []byte) {
		if r, _, err := parseReady(l); err == nil {
			if r == nil || (r.Error == "" && (r.Port <= 0 || r.Port > 65535)) {
				t.Fatalf("accepted ready %+v", r)
			}
		}
		if s, err := parseDial(l); err == nil && (s == "" || len(s) > 310) {
			t.Fatalf("dial status %q", s)
		}
	})
}
