package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// nodeCPU accounts, in one cgroup (v2), the CPU of everything that runs on
// the lab's nodes: each node's sshd and all it starts (sessions, shells,
// the engine or ansible's python, fwupdtool, dpkg-query, the daemons they
// leave). A run's node-side CPU is then measured apart from the rest of
// the machine, which other work may share; the tool's own CPU comes from
// its process.
type nodeCPU struct {
	dir string
}

// newNodeCPU moves the processes pids (the nodes' sshd listeners) into a
// new cgroup; their children are born in it. It fails where no cgroup v2
// hierarchy is mounted or it may not be written.
func newNodeCPU(pids []int) (*nodeCPU, error) {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	root := ""
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "cgroup2" {
			root = f[1]
			break
		}
	}
	if root == "" {
		return nil, errors.New("no cgroup v2 hierarchy mounted")
	}
	c := &nodeCPU{dir: filepath.Join(root, fmt.Sprintf("fleetup-bench-%d", os.Getpid()))}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return nil, err
	}
	for _, pid := range pids {
		if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			c.close()
			return nil, fmt.Errorf("move pid %d into %s: %w", pid, c.dir, err)
		}
	}
	if _, err := c.used(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// used is the CPU the cgroup's processes have used so far.
func (c *nodeCPU) used() (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("no usage_usec in %s/cpu.stat", c.dir)
}

// since is the CPU used since an earlier reading of used (0 when the
// cgroup cannot be read).
func (c *nodeCPU) since(t0 time.Duration) time.Duration {
	t, err := c.used()
	if err != nil {
		return 0
	}
	return t - t0
}

// close removes the cgroup, once the lab's processes are gone.
func (c *nodeCPU) close() error {
	var err error
	for i := 0; i < 50; i++ {
		if err = os.Remove(c.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // the last processes are exiting
	}
	return fmt.Errorf("remove cgroup %s: %w", c.dir, err)
}
