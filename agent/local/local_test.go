//go:build linux

package local_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/agent/agenttest"
	"github.com/fleetup/fleetup/agent/local"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// The local agent passes the conformance suite (all but the lost
// connection: it has none to lose).
func TestConformance(t *testing.T) {
	var runs []string
	agenttest.Run(t, agenttest.Harness{
		MarkerDir: t.TempDir(),
		Open: func(t *testing.T, _ []*fleetup.Component) agent.Agent {
			run := fmt.Sprintf("20260101-000000-%06x", time.Now().UnixNano()&0xffffff)
			runs = append(runs, run)
			a, err := local.New(local.Options{RunID: run})
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		Leftovers: func(t *testing.T) []string {
			var left []string
			for _, run := range runs {
				m, _ := filepath.Glob(filepath.Join(os.TempDir(), wire.DirPrefix+run+".*"))
				left = append(left, m...)
			}
			return left
		},
	})
}

// The local agent's health command runs through /bin/sh in the C locale,
// without the password variables and with nothing on its standard input;
// its output is bounded to its end, a non-zero exit is an ExitError with
// its status, and one still running when its context ends is killed.
func TestHealth(t *testing.T) {
	t.Setenv("FLEETUP_PASSWORD", "s3cret")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	a, err := local.New(local.Options{RunID: fmt.Sprintf("20260101-000000-%06x", time.Now().UnixNano()&0xffffff)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out, err := a.Health(ctx, `echo "LC_ALL=$LC_ALL password=${FLEETUP_PASSWORD:-none}"; cat; echo to-stderr >&2`)
	if want := "LC_ALL=C password=none\nto-stderr"; err != nil || out != want {
		t.Errorf("Health = %q, %v; want %q", out, err, want)
	}
	out, err = a.Health(ctx, "seq 1 100000")
	if err != nil || len(out) > transport.StderrTail || !strings.HasSuffix(out, "\n100000") {
		t.Errorf("Health of a long output: %d bytes ending %q, %v; want at most %d ending in 100000", len(out), out[max(0, len(out)-20):], err, transport.StderrTail)
	}
	out, err = a.Health(ctx, "echo bad; exit 3")
	var ee *transport.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 3 || out != "bad" {
		t.Errorf("Health = %q, %v; want \"bad\" and exit status 3", out, err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start := time.Now()
	_, err = a.Health(tctx, "sleep 30")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("Health past its deadline: %v after %s", err, time.Since(start))
	}
	if _, err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Health(ctx, "true"); !errors.Is(err, agent.ErrClosed) {
		t.Errorf("Health after Close: %v, want ErrClosed", err)
	}
}
