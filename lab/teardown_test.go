package lab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/fleetup/fleetup/internal/testenv"
)

// TestTeardownStaleIndex leaves behind what a crashed test would (a
// namespace with a process in it, a veth, /etc/netns) for an index whose
// lock is free, and checks that the clean-up Start runs on it removes all.
func TestTeardownStaleIndex(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "sleep")
	if err := os.MkdirAll(filepath.Join(StateDir, "index"), 0o755); err != nil {
		t.Fatal(err)
	}
	locks, err := allocate(1)
	if err != nil {
		t.Fatal(err)
	}
	i := locks[0].index
	t.Cleanup(func() {
		if err := teardownIndex(i); err != nil {
			t.Error(err)
		}
		locks[0].release()
	})
	ns, veth := "fulab-"+strconv.Itoa(i), "fulab"+strconv.Itoa(i)
	ctx := context.Background()
	for _, argv := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
	} {
		if err := hostRun(ctx, argv[0], argv[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join("/etc/netns", ns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("/etc/netns", ns, "resolv.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	t.Cleanup(func() {
		sleeper.Process.Kill()
		<-done
	})

	if err := teardownIndex(i); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("process in the stale namespace was not killed")
	}
	done <- nil // for the clean-up
	for _, p := range []string{"/run/netns/" + ns, "/sys/class/net/" + veth, "/etc/netns/" + ns} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s remains (%v)", p, err)
		}
	}
	if err := teardownIndex(i); err != nil {
		t.Errorf("teardown of a clean index: %v", err)
	}
}

func TestAllocateDistinct(t *testing.T) {
	testenv.RequireRoot(t)
	if err := os.MkdirAll(filepath.Join(StateDir, "index"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := allocate(3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range a {
			l.release()
		}
	}()
	b, err := allocate(2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range b {
			l.release()
		}
	}()
	seen := map[int]bool{}
	for _, l := range append(append([]*indexLock{}, a...), b...) {
		if seen[l.index] {
			t.Errorf("index %d handed out twice", l.index)
		}
		seen[l.index] = true
	}
	if _, err := allocate(MaxNodes); err == nil {
		t.Error("allocate(MaxNodes) with 5 indices held succeeded")
	}
}
