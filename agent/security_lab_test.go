//go:build linux

package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
	"github.com/fleetup/fleetup/wire"
)

// A process of the login user races the run: it replaces every engine and
// payload it can reach in the user's run directories with a program that
// records the uid it runs as. Whatever the timing, nothing of it may ever
// run as root: the engine is run from a root-owned copy whose SHA-256 was
// checked, and payloads live in the engine's root-owned directory.
func TestLoginUserCannotSwapEngineOrPayload(t *testing.T) {
	l := newLab(t)
	node := l.Nodes[0]
	h := &labHarness{lab: l, node: node, user: lab.UserSudo}

	pwn := filepath.Join(l.Dir, "pwn")
	if err := os.MkdirAll(pwn, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pwn, 0o1777); err != nil {
		t.Fatal(err)
	}
	attack := fmt.Sprintf(`evil='#!/bin/sh
id -u > %[1]s/ran-as-$(id -u)
'
n=0
while :; do
  for d in /tmp/fleetup-* /var/tmp/fleetup-* /dev/shm/fleetup-* "$HOME"/fleetup-*; do
    [ -d "$d" ] && [ -O "$d" ] || continue
    printf '%%s' "$evil" > "$d/.x" 2>/dev/null && chmod 755 "$d/.x" && mv -f "$d/.x" "$d/fleetup-engine" 2>/dev/null && n=$((n+1)) && echo $n > %[1]s/swaps
    for p in "$d"/payloads/*; do [ -f "$p" ] && printf '%%s' "$evil" > "$p" 2>/dev/null; done
  done
done`, pwn)
	actx, stop := context.WithCancel(context.Background())
	attacker := make(chan error, 1)
	go func() {
		_, err := node.Exec(actx, "setpriv", "--reuid="+lab.UserSudo, "--regid="+lab.UserSudo, "--init-groups", "--reset-env", "sh", "-c", attack)
		attacker <- err
	}()
	defer func() { stop(); <-attacker }()

	dir := t.TempDir()
	markers := filepath.Join(l.Dir, "markers-swap")
	if err := os.MkdirAll(markers, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(markers, "c")
	testbaseline.Script(t, dir, "swap.c", "1.0", "#!/bin/sh\necho genuine > "+marker+"\n", "cat "+marker+" 2>/dev/null", "linux")
	b, err := baseline.Load(dir)
	if err != nil || b.Err() != nil {
		t.Fatal(err, b.Err())
	}
	refused, ran := 0, 0
	for try := 0; try < 6; try++ {
		a, err := h.openErr(t, b.Components)
		if _, err := os.Stat(filepath.Join(pwn, "ran-as-0")); err == nil {
			t.Fatalf("try %d: a program the login user planted ran as root", try)
		}
		if err != nil {
			if !errors.Is(err, agent.ErrEngineChanged) {
				t.Fatalf("try %d: NewRemote: %v, want success or ErrEngineChanged", try, err)
			}
			refused++
			continue
		}
		ran++
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err := a.Install(ctx, wire.InstallRequest{Items: []wire.InstallItem{{Component: *b.Components[0], Action: fleetup.ActionUpdate}}}, func(fleetup.Event) {})
		cancel()
		if err != nil || len(res) != 1 || res[0].Phase != fleetup.PhaseInstalled {
			t.Errorf("try %d: install: %v %+v", try, err, res)
		}
		if got, _ := os.ReadFile(marker); strings.TrimSpace(string(got)) != "genuine" {
			t.Errorf("try %d: the payload that ran wrote %q", try, got)
		}
		if _, err := a.Close(context.Background()); err != nil {
			t.Errorf("try %d: close: %v", try, err)
		}
	}
	swaps, _ := os.ReadFile(filepath.Join(pwn, "swaps"))
	t.Logf("engine runs %d, refused as changed %d, swaps by the login user %s", ran, refused, strings.TrimSpace(string(swaps)))
	if n, _ := strconv.Atoi(strings.TrimSpace(string(swaps))); n == 0 {
		t.Fatal("the login user never managed to swap an engine: the race was not run")
	}
	if _, err := os.Stat(filepath.Join(pwn, "ran-as-0")); err == nil {
		t.Fatal("a program the login user planted ran as root")
	}
	if left := h.leftovers(t); len(left) > 0 {
		t.Errorf("left on the node: %v", left)
	}
}
