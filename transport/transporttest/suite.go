// Package transporttest is the one suite every transport.Conn
// implementation must pass. An implementation's tests call Run with a
// function that dials a fresh Conn to a node; the suite closes every Conn it
// dials and removes every file it writes on the node.
//
// The suite needs on the node: /bin/sh, cat, sleep, mktemp, rm, stat,
// sha256sum, kill and bash (for its /dev/tcp, used to connect to a
// ListenNode listener from the node's side).
package transporttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup/transport"
)

// patience bounds every wait for something the node does in the
// background. It is a safety net against hanging tests, not a timing
// assertion: on a healthy node everything takes milliseconds.
const patience = 30 * time.Second

// Run runs the shared suite against the Conns that dial returns. dial is
// called once per subtest; the suite closes the Conn.
func Run(t *testing.T, dial func(t *testing.T) transport.Conn) {
	open := func(t *testing.T) transport.Conn {
		t.Helper()
		c := dial(t)
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("RunIO", func(t *testing.T) { testRunIO(t, open(t)) })
	t.Run("User", func(t *testing.T) { testUser(t, open(t)) })
	t.Run("ExitError", func(t *testing.T) { testExitError(t, open(t)) })
	t.Run("Quoting", func(t *testing.T) { testQuoting(t, open(t)) })
	t.Run("CancelKills", func(t *testing.T) { testCancelKills(t, open(t)) })
	t.Run("StartWait", func(t *testing.T) { testStartWait(t, open(t)) })
	t.Run("StartExit", func(t *testing.T) { testStartExit(t, open(t)) })
	t.Run("CloseGivesEOF", func(t *testing.T) { testCloseGivesEOF(t, open(t)) })
	t.Run("WriteFile", func(t *testing.T) { testWriteFile(t, open(t)) })
	t.Run("WriteFileLarge", func(t *testing.T) { testWriteFileLarge(t, open(t)) })
	t.Run("Exists", func(t *testing.T) { testExists(t, open(t)) })
	t.Run("ListenNode", func(t *testing.T) { testListenNode(t, open(t)) })
	t.Run("DialNode", func(t *testing.T) { testDialNode(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
}

// output runs cmd and returns its standard output, failing t on error.
func output(t *testing.T, c transport.Conn, cmd string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := c.Run(context.Background(), cmd, nil, &out, &errb); err != nil {
		t.Fatalf("Run(%q): %v (stderr %q)", cmd, err, errb.String())
	}
	return out.String()
}

// tempDir makes a directory on the node, removed when t ends.
func tempDir(t *testing.T, c transport.Conn) string {
	t.Helper()
	dir := strings.TrimSpace(output(t, c, "mktemp -d"))
	if dir == "" {
		t.Fatal("mktemp -d printed nothing")
	}
	t.Cleanup(func() {
		_ = c.Run(context.Background(), "rm -rf "+transport.ShellQuote(dir), nil, nil, nil)
	})
	return dir
}

// eventually polls cond until it is true or patience runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testRunIO(t *testing.T, c transport.Conn) {
	var out, errb bytes.Buffer
	err := c.Run(context.Background(), "cat; echo to-stderr >&2", strings.NewReader("hello\nworld\n"), &out, &errb)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := out.String(), "hello\nworld\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := errb.String(), "to-stderr\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	// nil stdin reads as empty, nil writers discard.
	if err := c.Run(context.Background(), "cat; echo x; echo y >&2", nil, nil, nil); err != nil {
		t.Errorf("Run with nil stdin and writers: %v", err)
	}
}

func testUser(t *testing.T, c transport.Conn) {
	if c.User() == "" {
		t.Fatal("User() is empty")
	}
	if got := strings.TrimSpace(output(t, c, "id -un")); got != c.User() {
		t.Errorf("commands run as %q, User() = %q", got, c.User())
	}
}

func testExitError(t *testing.T, c transport.Conn) {
	tests := []struct {
		name       string
		cmd        string
		stderr     bool // pass a stderr writer
		wantCode   int
		wantStderr string // substring of ExitError.Stderr
	}{
		{name: "plain", cmd: "exit 3", wantCode: 3},
		{name: "stderr tail captured", cmd: "echo boom >&2; exit 7", wantCode: 7, wantStderr: "boom"},
		{name: "stderr tail with writer", cmd: "echo bang >&2; exit 9", stderr: true, wantCode: 9, wantStderr: "bang"},
		{name: "command not found", cmd: "no-such-command-fleetup", wantCode: 127},
		{name: "large stderr keeps the tail", cmd: "i=0; while [ $i -lt 2000 ]; do echo line$i >&2; i=$((i+1)); done; exit 1", wantCode: 1, wantStderr: "line1999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w io.Writer
			var buf bytes.Buffer
			if tt.stderr {
				w = &buf
			}
			err := c.Run(context.Background(), tt.cmd, nil, nil, w)
			var ee *transport.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("Run(%q) = %v, want *transport.ExitError", tt.cmd, err)
			}
			if ee.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d", ee.ExitCode, tt.wantCode)
			}
			if !strings.Contains(ee.Stderr, tt.wantStderr) {
				t.Errorf("ExitError.Stderr = %q, want it to contain %q", ee.Stderr, tt.wantStderr)
			}
			if len(ee.Stderr) > 8192 {
				t.Errorf("ExitError.Stderr is %d bytes; want only a tail", len(ee.Stderr))
			}
			if tt.stderr && !strings.Contains(buf.String(), tt.wantStderr) {
				t.Errorf("stderr writer got %q, want %q", buf.String(), tt.wantStderr)
			}
		})
	}
}

func testQuoting(t *testing.T, c transport.Conn) {
	values := []string{"", "plain", "two words", "it's", `"double"`, "$HOME", "`id`", `back\slash`,
		"new\nline", "*", "a;b|c&d", "tab\there", "ünïcødé", "-n", "'", "$(echo x)"}
	for _, v := range values {
		t.Run(strconv.Quote(v), func(t *testing.T) {
			// As an argument.
			if got := output(t, c, "printf %s "+transport.ShellQuote(v)); got != v {
				t.Errorf("argument: got %q, want %q", got, v)
			}
			// As an environment variable of the command.
			if got := output(t, c, "FLEETUP_X="+transport.ShellQuote(v)+` sh -c 'printf %s "$FLEETUP_X"'`); got != v {
				t.Errorf("environment: got %q, want %q", got, v)
			}
		})
	}
}

// readPID reads the first line of r as a process id.
func readPID(r io.Reader) (int, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read pid: %w (got %q)", err, line)
	}
	return strconv.Atoi(strings.TrimSpace(line))
}

func alive(t *testing.T, c transport.Conn, pid int) bool {
	t.Helper()
	err := c.Run(context.Background(), fmt.Sprintf("kill -0 %d 2>/dev/null", pid), nil, nil, nil)
	var ee *transport.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("check pid %d: %v", pid, err)
	}
	return err == nil
}

func testCancelKills(t *testing.T, c transport.Conn) {
	// The sleep is a child of the shell, not the shell itself: cancelling
	// must take the whole command down, not only its top process.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, "sleep 1000 & echo $!; wait", nil, pw, nil)
		pw.Close()
	}()
	pid, err := readPID(pr)
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	if !alive(t, c, pid) {
		t.Fatalf("sleep (pid %d) is not running before cancel", pid)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(patience):
		t.Fatal("Run did not return after its context was cancelled")
	}
	eventually(t, fmt.Sprintf("sleep (pid %d) to be killed", pid), func() bool { return !alive(t, c, pid) })
}

func testStartWait(t *testing.T, c transport.Conn) {
	p, err := c.Start(context.Background(), "cat; echo done >&2")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer p.Close()
	var stdout, stderr []byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stdout, _ = io.ReadAll(p.Stdout()) }()
	go func() { defer wg.Done(); stderr, _ = io.ReadAll(p.Stderr()) }()
	if _, err := io.WriteString(p.Stdin(), "through stdin\n"); err != nil {
		t.Fatalf("write stdin: %v", err)
	}
	if err := p.Stdin().Close(); err != nil {
		t.Fatalf("close stdin: %v", err)
	}
	wg.Wait()
	if err := p.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if got, want := string(stdout), "through stdin\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := string(stderr), "done\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close after Wait: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func testStartExit(t *testing.T, c transport.Conn) {
	p, err := c.Start(context.Background(), "exit 5")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer p.Close()
	go io.Copy(io.Discard, p.Stdout())
	go io.Copy(io.Discard, p.Stderr())
	err = p.Wait()
	var ee *transport.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 5 {
		t.Fatalf("Wait = %v, want *transport.ExitError with code 5", err)
	}
}

// testCloseGivesEOF is how the engine on a node notices that the manager is
// gone: Process.Close must end its standard input.
func testCloseGivesEOF(t *testing.T, c transport.Conn) {
	dir := tempDir(t, c)
	mark := dir + "/eof"
	p, err := c.Start(context.Background(), "cat >/dev/null; echo eof >"+transport.ShellQuote(mark))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := io.WriteString(p.Stdin(), "some input\n"); err != nil {
		t.Fatalf("write stdin: %v", err)
	}
	// The process must be running and blocked on its stdin now.
	if output(t, c, "test -e "+transport.ShellQuote(mark)+" && echo yes || echo no") != "no\n" {
		t.Fatal("process finished before Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	eventually(t, "the process to see EOF on stdin after Close", func() bool {
		return output(t, c, "cat "+transport.ShellQuote(mark)+" 2>/dev/null || true") == "eof\n"
	})
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func remoteFile(t *testing.T, c transport.Conn, path string) (sum string, mode string) {
	t.Helper()
	out := output(t, c, "sha256sum <"+transport.ShellQuote(path)+" && stat -c %a "+transport.ShellQuote(path))
	f := strings.Fields(out) // "HASH - MODE"
	if len(f) != 3 {
		t.Fatalf("unexpected sha256sum/stat output %q", out)
	}
	return f[0], f[2]
}

func testWriteFile(t *testing.T, c transport.Conn) {
	dir := tempDir(t, c)
	tests := []struct {
		name    string
		path    string
		mode    fs.FileMode
		content string
	}{
		{name: "executable", path: "engine", mode: 0o755, content: "#!/bin/sh\necho engine\n"},
		{name: "private", path: "key.pem", mode: 0o600, content: "secret"},
		{name: "empty", path: "empty", mode: 0o644, content: ""},
		{name: "overwrite smaller with other mode", path: "engine", mode: 0o700, content: "x"},
		{name: "name with space", path: "a file", mode: 0o640, content: "spaced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dir + "/" + tt.path
			if err := c.WriteFile(context.Background(), path, tt.mode, strings.NewReader(tt.content)); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			if got := output(t, c, "cat "+transport.ShellQuote(path)); got != tt.content {
				t.Errorf("content = %q, want %q", got, tt.content)
			}
			if _, mode := remoteFile(t, c, path); mode != strconv.FormatUint(uint64(tt.mode), 8) {
				t.Errorf("mode = %s, want %o", mode, tt.mode)
			}
		})
	}
	// Nothing but the files written is left in the directory (no temporaries).
	if got, want := output(t, c, "cd "+transport.ShellQuote(dir)+" && ls -A | sort"), "a file\nempty\nengine\nkey.pem\n"; got != want {
		t.Errorf("directory holds %q, want %q", got, want)
	}
	// A missing directory is an error, not a hang or a panic.
	if err := c.WriteFile(context.Background(), dir+"/missing/file", 0o644, strings.NewReader("x")); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func testWriteFileLarge(t *testing.T, c transport.Conn) {
	dir := tempDir(t, c)
	const size = 64 << 20
	// A plain io.Reader of unknown size: the transport must stream it.
	src := struct{ io.Reader }{io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size)}
	h := sha256.New()
	path := dir + "/big"
	if err := c.WriteFile(context.Background(), path, 0o750, io.TeeReader(src, h)); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	sum, mode := remoteFile(t, c, path)
	if want := hex.EncodeToString(h.Sum(nil)); sum != want {
		t.Errorf("sha256 on the node = %s, want %s", sum, want)
	}
	if mode != "750" {
		t.Errorf("mode = %s, want 750", mode)
	}
	// A sized reader (the fast path for some transports) must agree.
	data := make([]byte, 3<<20+17)
	rand.NewChaCha8([32]byte{4}).Read(data)
	if err := c.WriteFile(context.Background(), path, 0o600, bytes.NewReader(data)); err != nil {
		t.Fatalf("WriteFile (bytes.Reader): %v", err)
	}
	sum, mode = remoteFile(t, c, path)
	if want := fmt.Sprintf("%x", sha256.Sum256(data)); sum != want || mode != "600" {
		t.Errorf("after rewrite: sha256 %s mode %s, want %s 600", sum, mode, want)
	}
}

func testListenNode(t *testing.T, c transport.Conn) {
	l, err := c.ListenNode(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ListenNode: %v", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil || port == "0" {
		t.Fatalf("listener address %v: want a concrete port (%v)", l.Addr(), err)
	}
	accepted := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer conn.Close()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != "ping\n" {
			accepted <- fmt.Errorf("read %q: %v", line, err)
			return
		}
		_, err = io.WriteString(conn, "pong\n")
		accepted <- err
	}()
	// Connect from the node's side.
	got := output(t, c, "bash -c 'exec 3<>/dev/tcp/127.0.0.1/"+port+`; echo ping >&3; read -r line <&3; echo "$line"'`)
	if got != "pong\n" {
		t.Errorf("node read %q through the listener, want %q", got, "pong\n")
	}
	if err := <-accepted; err != nil {
		t.Errorf("accept side: %v", err)
	}
	// After Close, Accept returns at once.
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}

func testDialNode(t *testing.T, c transport.Conn) {
	// A listener on the node (through ListenNode, so the suite needs no
	// server program there), dialled from the node's side.
	l, err := c.ListenNode(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ListenNode: %v", err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); io.Copy(conn, conn) }()
		}
	}()
	conn, err := c.DialNode(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatalf("DialNode(%s): %v", l.Addr(), err)
	}
	defer conn.Close()
	msg := bytes.Repeat([]byte("echo through the node "), 10000)
	go func() { conn.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Error("echoed bytes differ")
	}
	// A port nobody listens on is an error.
	l2, err := c.ListenNode(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ListenNode: %v", err)
	}
	closed := l2.Addr().String()
	l2.Close()
	if conn, err := c.DialNode(context.Background(), closed); err == nil {
		// Some transports report a refused connection on first use.
		conn.SetReadDeadline(time.Now().Add(patience))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("DialNode to closed port %s worked", closed)
		}
		conn.Close()
	}
}

func testConcurrent(t *testing.T, c transport.Conn) {
	dir := tempDir(t, c)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			want := fmt.Sprintf("worker %d\n", i)
			var out bytes.Buffer
			if err := c.Run(ctx, "cat", strings.NewReader(want), &out, nil); err != nil {
				errs <- fmt.Errorf("worker %d: Run: %w", i, err)
				return
			}
			if out.String() != want {
				errs <- fmt.Errorf("worker %d: Run printed %q", i, out.String())
				return
			}
			path := fmt.Sprintf("%s/f%d", dir, i)
			if err := c.WriteFile(ctx, path, 0o644, strings.NewReader(want)); err != nil {
				errs <- fmt.Errorf("worker %d: WriteFile: %w", i, err)
				return
			}
			out.Reset()
			if err := c.Run(ctx, "cat "+path, nil, &out, nil); err != nil || out.String() != want {
				errs <- fmt.Errorf("worker %d: read back %q: %v", i, out.String(), err)
				return
			}
			p, err := c.Start(ctx, "cat")
			if err != nil {
				errs <- fmt.Errorf("worker %d: Start: %w", i, err)
				return
			}
			defer p.Close()
			go func() { io.WriteString(p.Stdin(), want); p.Stdin().Close() }()
			go io.Copy(io.Discard, p.Stderr())
			got, _ := io.ReadAll(p.Stdout())
			if err := p.Wait(); err != nil || string(got) != want {
				errs <- fmt.Errorf("worker %d: started cat gave %q: %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testExists checks transport.PathChecker, for the Conns that have it.
func testExists(t *testing.T, c transport.Conn) {
	pc, ok := c.(transport.PathChecker)
	if !ok {
		t.Skip("not a transport.PathChecker")
	}
	dir := tempDir(t, c)
	output(t, c, "touch "+transport.ShellQuote(dir+"/file")+" && ln -s nowhere "+transport.ShellQuote(dir+"/dangling"))
	for _, tt := range []struct {
		name, path string
		want       bool
	}{
		{"directory", dir, true},
		{"file", dir + "/file", true},
		{"dangling symlink", dir + "/dangling", true},
		{"missing", dir + "/missing", false},
		{"under a missing directory", dir + "/missing/file", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pc.Exists(context.Background(), tt.path)
			if err != nil || got != tt.want {
				t.Errorf("Exists(%q) = %v, %v; want %v, nil", tt.path, got, err, tt.want)
			}
		})
	}
}
