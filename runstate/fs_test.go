package runstate

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCrashMidWrite: a temporary file that a writer which died left next
// to a state file (written, perhaps synced, never renamed) changes
// nothing: readers see the old content, the next write goes through, and
// once the temporary file is old it is removed.
func TestCrashMidWrite(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	r := begin(t, j, "r1")
	record(t, r, "n1", StatePlaced)
	before, err := os.ReadFile(filepath.Join(dir, "r1.json"))
	if err != nil {
		t.Fatal(err)
	}
	// What writeTemp leaves when its process dies before the rename.
	tmp := filepath.Join(dir, ".r1.json.tmp-4242")
	if err := os.WriteFile(tmp, before[:len(before)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	fwDir := filepath.Join(dir, "localfw")
	if err := WriteFirewallState(fwDir, &FirewallState{RunID: "r1", Tag: "t", Ports: []int{1}}); err != nil {
		t.Fatal(err)
	}
	fwTmp := filepath.Join(fwDir, ".r1.json.tmp-77")
	os.WriteFile(fwTmp, []byte(`{"version":1,"run_id":"r1","ta`), 0o600)
	credTmp := filepath.Join(dir, ".ftp-r2.credentials.tmp-9")
	os.WriteFile(credTmp, []byte("user=u\npass"), 0o600)

	runs, err := open(t, dir).Pending()
	if err != nil || len(runs) != 1 || len(runs[0].Nodes) != 1 {
		t.Fatalf("Pending after a crashed write: %+v, %v", runs, err)
	}
	if states, err := ReadFirewallStates(fwDir); err != nil || len(states) != 1 {
		t.Fatalf("firewall states after a crashed write: %+v, %v", states, err)
	}
	if creds, err := ReadFTPCredentials(dir); err != nil || len(creds) != 0 {
		t.Fatalf("ftp credentials after a crashed write: %+v, %v", creds, err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "r1.json")); string(after) != string(before) {
		t.Errorf("run file changed by a crashed write:\n%s\nwas\n%s", after, before)
	}
	record(t, r, "n2", StatePlaced) // the next write goes through
	for _, f := range []string{tmp, fwTmp, credTmp} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("a fresh temporary file was removed (it may be a write in progress): %v", err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	for _, f := range []string{tmp, fwTmp, credTmp} {
		os.Chtimes(f, old, old)
	}
	open(t, dir)
	ReadFirewallStates(fwDir)
	for _, f := range []string{tmp, fwTmp, credTmp} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale temporary file %s: %v, want it removed", f, err)
		}
	}
}

// TestFailedWriteKeepsOldContent: a write that fails (here: the rename,
// the target being a non-empty directory) leaves the old file and no
// temporary file.
func TestFailedWriteKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := writeAtomic(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	blocked := filepath.Join(dir, "d")
	os.MkdirAll(filepath.Join(blocked, "x"), 0o700)
	if err := writeAtomic(blocked, []byte("new")); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	if err := writeNew(path, []byte("new")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("writeNew over an existing file: %v, want ErrExist", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("content %q, want old", data)
	}
	if diff := cmp.Diff([]string{"d", "f"}, listDir(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	if err := writeNew(filepath.Join(dir, "g"), []byte("g")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "g"))
	if err != nil || fi.Mode().Perm() != 0o600 && hasModes {
		t.Errorf("writeNew: %v, %v; want mode 0600", fi, err)
	}
	if diff := cmp.Diff([]string{"d", "f", "g"}, listDir(t, dir)); diff != "" {
		t.Errorf("directory after writeNew (-want +got):\n%s", diff)
	}
}

const crashWriterEnv = "FLEETUP_RUNSTATE_CRASH_WRITER"

// crashWriter is the re-executed test binary of TestKilledWriter: it
// writes run "crash" of the journal in dir, and a firewall state, over
// and over, each write larger than the one before, until it is killed.
func crashWriter(dir string) {
	j, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r := &Run{j: j, id: "crash"}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		node := fmt.Sprintf("p%d-n%06d", os.Getpid(), i)
		if err := r.Record(NodeRecord{Node: node, State: StatePlaced, EngineDir: strings.Repeat("d", 200)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ports := make([]int, i%500+1)
		for k := range ports {
			ports[k] = k + 1
		}
		if err := WriteFirewallState(filepath.Join(dir, "localfw"), &FirewallState{RunID: "crash", Tag: "t", Ports: ports}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if i == 0 {
			out.WriteString("ready\n")
			out.Flush()
		}
	}
}

// TestKilledWriter kills, with SIGKILL at random moments, processes that
// keep rewriting a run file and a firewall state file: after every kill
// both still parse, and nothing but hidden temporary files is left over.
func TestKilledWriter(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := open(t, dir).Begin("crash"); err != nil {
		t.Fatal(err)
	}
	nodes := 0
	for round := 0; round < 15; round++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashWriterEnv+"="+dir)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("writer: %q, %v", line, err)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		cmd.Process.Kill()
		if err := cmd.Wait(); err == nil {
			t.Fatal("the writer exited by itself")
		}
		runs, err := open(t, dir).Pending()
		if err != nil || len(runs) != 1 {
			t.Fatalf("round %d: Pending after a kill: %v, %v", round, len(runs), err)
		}
		if len(runs[0].Nodes) <= nodes {
			t.Fatalf("round %d: %d nodes, not more than the %d before", round, len(runs[0].Nodes), nodes)
		}
		nodes = len(runs[0].Nodes)
		states, err := ReadFirewallStates(filepath.Join(dir, "localfw"))
		if err != nil || len(states) != 1 || states[0].Liveness.Alive {
			t.Fatalf("round %d: firewall state after a kill: %+v, %v; want one, of a dead owner", round, states, err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "localfw")} {
		for _, name := range listDir(t, d) {
			if name != "crash.json" && name != "crash.lock" && name != "localfw" && !isTemp(name) {
				t.Errorf("%s: unexpected file %s", d, name)
			}
		}
	}
}

// TestModes: every file is 0600 and every directory made 0700.
func TestModes(t *testing.T) {
	if !hasModes {
		t.Skip("no file modes on " + runtime.GOOS)
	}
	root := filepath.Join(t.TempDir(), "state")
	j := open(t, root)
	begin(t, j, "r1")
	fwDir := filepath.Join(t.TempDir(), "run", "localfw")
	if err := WriteFirewallState(fwDir, &FirewallState{RunID: "r1", Tag: "t"}); err != nil {
		t.Fatal(err)
	}
	cred, err := WriteFTPCredentials(filepath.Join(t.TempDir(), "s2"), FTPCredentials{RunID: "r1", User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, fwDir, filepath.Dir(fwDir), filepath.Dir(cred)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
			t.Errorf("directory %s: %v; want a directory of mode 0700", p, modeOf(fi, err))
		}
	}
	for _, p := range []string{filepath.Join(root, "r1.json"), filepath.Join(root, "r1.lock"), filepath.Join(fwDir, "r1.json"), cred} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("file %s: %v; want mode 0600", p, modeOf(fi, err))
		}
	}
}

func modeOf(fi fs.FileInfo, err error) any {
	if err != nil {
		return err
	}
	return fi.Mode()
}
