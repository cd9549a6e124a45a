package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SnapshotDirs are the directories of a node whose contents Snapshot
// records: the temporary directories and the users' homes.
var SnapshotDirs = []string{"/tmp", "/var/tmp", "/dev/shm", "/home", "/root"}

// Snapshot is what could be left behind on a node: files, processes,
// listening TCP sockets and firewall rules. Take one before and one after
// a run; after.Diff(before) lists what the run left.
type Snapshot struct {
	Files     []File     // everything under SnapshotDirs (not the dirs themselves), by path
	Processes []Process  // every process in the node but its sshd listener, by PID
	Listeners []Listener // listening TCP sockets
	Nftables  string     // nft list ruleset
	Iptables  string     // iptables-save
	Ip6tables string     // ip6tables-save
}

// File is a file or directory on a node.
type File struct {
	Path    string // as seen on the node
	Mode    fs.FileMode
	Size    int64
	ModTime time.Time
	Owner   string // user name, or uid when unknown
}

// Process is a process running on a node.
type Process struct {
	PID     int
	User    string // real user, name or uid
	Cmdline string // arguments joined by spaces; "[comm]" when empty
}

// Listener is a listening TCP socket, from "ss -Hltnp".
type Listener struct {
	Local    string   // local address and port, "0.0.0.0:22", "[::]:22"
	Programs []string // names of the programs holding it, sorted
}

func (l Listener) String() string {
	if len(l.Programs) == 0 {
		return l.Local
	}
	return l.Local + " (" + strings.Join(l.Programs, ", ") + ")"
}

// Snapshot records what is on the node now.
func (n *Node) Snapshot(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	var err error
	outputs := []struct {
		dst  *string
		argv []string
	}{
		{&s.Nftables, []string{"nft", "list", "ruleset"}},
		{&s.Iptables, []string{"iptables-save"}},
		{&s.Ip6tables, []string{"ip6tables-save"}},
	}
	for _, o := range outputs {
		out, _, err := n.run(ctx, nil, false, o.argv[0], o.argv[1:]...)
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot: %w", err)
		}
		*o.dst = string(out)
	}
	out, _, err := n.run(ctx, nil, false, "ss", "-Hltnp")
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	if s.Listeners, err = parseListeners(string(out)); err != nil {
		return Snapshot{}, fmt.Errorf("%s: snapshot: %w", n.Name, err)
	}
	pid := n.PID()
	if pid == 0 {
		return Snapshot{}, fmt.Errorf("%s: snapshot: node not running", n.Name)
	}
	names := newNameCache()
	if s.Files, err = walkFiles(fmt.Sprintf("/proc/%d/root", pid), names); err != nil {
		return Snapshot{}, fmt.Errorf("%s: snapshot: %w", n.Name, err)
	}
	if s.Processes, err = nodeProcesses(pid, names); err != nil {
		return Snapshot{}, fmt.Errorf("%s: snapshot: %w", n.Name, err)
	}
	return s, nil
}

// walkFiles lists the files under SnapshotDirs as seen from root, a
// process's /proc/PID/root (so the node's mount namespace).
func walkFiles(root string, names *nameCache) ([]File, error) {
	var files []File
	for _, dir := range SnapshotDirs {
		base := root + dir
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // gone while walking
				}
				return err
			}
			if p == base {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			f := File{Path: strings.TrimPrefix(p, root), Mode: info.Mode(), Size: info.Size(), ModTime: info.ModTime()}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				f.Owner = names.user(int(st.Uid))
			}
			if f.Mode.IsDir() {
				f.Size = 0
			}
			files = append(files, f)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", dir, err)
		}
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

// nodeProcesses lists the processes in the network namespace of process
// listener, except listener itself.
func nodeProcesses(listener int, names *nameCache) ([]Process, error) {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", listener))
	if err != nil {
		return nil, fmt.Errorf("namespace of sshd: %w", err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var ps []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == listener {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || ns != want {
			continue
		}
		p := Process{PID: pid}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone
		}
		p.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
		if p.Cmdline == "" {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			p.Cmdline = "[" + strings.TrimSpace(string(comm)) + "]"
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		p.User = names.user(statusUID(string(status)))
		ps = append(ps, p)
	}
	return ps, nil
}

// statusUID returns the real uid from /proc/PID/status, or -1.
func statusUID(status string) int {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if uid, err := strconv.Atoi(f[0]); err == nil {
					return uid
				}
			}
		}
	}
	return -1
}

type nameCache struct{ m map[int]string }

func newNameCache() *nameCache { return &nameCache{m: map[int]string{}} }

func (c *nameCache) user(uid int) string {
	if n, ok := c.m[uid]; ok {
		return n
	}
	n := strconv.Itoa(uid)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	c.m[uid] = n
	return n
}

var ssProgRE = regexp.MustCompile(`\("([^"]*)",pid=`)

// parseListeners parses "ss -Hltnp" output: one socket a line, the columns
// State, Recv-Q, Send-Q, Local, Peer and optionally Process.
func parseListeners(out string) ([]Listener, error) {
	var ls []Listener
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("ss line %d %q: want at least 5 columns", i+1, line)
		}
		if f[0] != "LISTEN" {
			return nil, fmt.Errorf("ss line %d %q: state %q, want LISTEN", i+1, line, f[0])
		}
		l := Listener{Local: f[3]}
		if len(f) > 5 {
			for _, m := range ssProgRE.FindAllStringSubmatch(strings.Join(f[5:], " "), -1) {
				if !slices.Contains(l.Programs, m[1]) {
					l.Programs = append(l.Programs, m[1])
				}
			}
			slices.Sort(l.Programs)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

var (
	nftCounterRE = regexp.MustCompile(`\b(packets|bytes) [0-9]+`)
	iptCounterRE = regexp.MustCompile(`\[[0-9]+:[0-9]+\]`)
)

// normalizeRules drops comments and blank lines and zeroes counters, so
// that two listings of the same rules compare equal.
func normalizeRules(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = nftCounterRE.ReplaceAllString(line, "$1 0")
		line = iptCounterRE.ReplaceAllString(line, "[0:0]")
		out = append(out, line)
	}
	return out
}

// newLines returns the lines of after that before does not have (as a
// multiset: a line twice in after and once in before is new once).
func newLines(before, after []string) []string {
	have := map[string]int{}
	for _, l := range before {
		have[l]++
	}
	var out []string
	for _, l := range after {
		if have[l] > 0 {
			have[l]--
			continue
		}
		out = append(out, l)
	}
	return out
}

// Diff lists, one item a line, what s has that before did not: new files
// and directories, files whose mode, size, owner or modification time
// changed (directories only when mode or owner did, since their times
// change with their contents), new processes, new listening sockets, new
// firewall rules. It is "" when nothing is new. What disappeared is not
// listed.
func (s Snapshot) Diff(before Snapshot) string {
	var b strings.Builder
	old := map[string]File{}
	for _, f := range before.Files {
		old[f.Path] = f
	}
	for _, f := range s.Files {
		o, ok := old[f.Path]
		kind := "file"
		if f.Mode.IsDir() {
			kind = "dir"
		}
		switch {
		case !ok:
			fmt.Fprintf(&b, "new %s %s (%v %s, %d bytes)\n", kind, f.Path, f.Mode, f.Owner, f.Size)
		case f.Mode != o.Mode || f.Owner != o.Owner:
			fmt.Fprintf(&b, "changed %s %s (%v %s, was %v %s)\n", kind, f.Path, f.Mode, f.Owner, o.Mode, o.Owner)
		case !f.Mode.IsDir() && (f.Size != o.Size || !f.ModTime.Equal(o.ModTime)):
			fmt.Fprintf(&b, "changed %s %s (%d bytes, modified %s; was %d bytes, modified %s)\n",
				kind, f.Path, f.Size, f.ModTime.Format(time.RFC3339Nano), o.Size, o.ModTime.Format(time.RFC3339Nano))
		}
	}
	oldProcs := map[Process]bool{}
	for _, p := range before.Processes {
		oldProcs[p] = true
	}
	for _, p := range s.Processes {
		if !oldProcs[p] {
			fmt.Fprintf(&b, "new process %d (%s): %s\n", p.PID, p.User, p.Cmdline)
		}
	}
	oldL := map[string]bool{}
	for _, l := range before.Listeners {
		oldL[l.String()] = true
	}
	for _, l := range s.Listeners {
		if !oldL[l.String()] {
			fmt.Fprintf(&b, "new listener %s\n", l)
		}
	}
	rules := []struct{ name, before, after string }{
		{"nftables", before.Nftables, s.Nftables},
		{"iptables", before.Iptables, s.Iptables},
		{"ip6tables", before.Ip6tables, s.Ip6tables},
	}
	for _, r := range rules {
		for _, l := range newLines(normalizeRules(r.before), normalizeRules(r.after)) {
			fmt.Fprintf(&b, "new %s line: %s\n", r.name, l)
		}
	}
	return b.String()
}
