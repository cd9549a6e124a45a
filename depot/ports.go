package depot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MaxPortMoves bounds how far a default port moves when it is taken.
const MaxPortMoves = 100

// PortInUseError is returned by Start when a port the user chose explicitly
// is taken. PID and Process name the process listening on it when it could
// be found (0 and "" otherwise: another network namespace, or no right to
// look).
type PortInUseError struct {
	What    string // "http" or "https"
	Port    int
	PID     int
	Process string
	Err     error
}

func (e *PortInUseError) Error() string {
	what := e.What
	if what == "" {
		what = "tcp"
	}
	switch {
	case e.PID != 0 && e.Process != "":
		return fmt.Sprintf("%s port %d is in use by pid %d (%s)", what, e.Port, e.PID, e.Process)
	case e.PID != 0:
		return fmt.Sprintf("%s port %d is in use by pid %d", what, e.Port, e.PID)
	}
	return fmt.Sprintf("%s port %d is in use", what, e.Port)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// InUse returns err as a *PortInUseError naming the process that listens
// on port, when err says the address is in use; otherwise it returns nil.
// Other servers of the manager (FTP) use it for the same message.
func InUse(what string, port int, err error) *PortInUseError {
	if !isAddrInUse(err) {
		return nil
	}
	pid, comm := portHolder(port)
	return &PortInUseError{What: what, Port: port, PID: pid, Process: comm, Err: err}
}

// listenDual listens on port on every address, IPv4 and IPv6 (on Linux
// "tcp" on ":port" is one dual-stack socket).
func listenDual(ctx context.Context, port int) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", ":"+strconv.Itoa(port))
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// portHolder finds the process listening on TCP port, by the LISTEN
// socket's inode in /proc/net/tcp{,6} and the process whose file
// descriptors include that socket. It returns 0, "" when not found.
func portHolder(port int) (pid int, comm string) {
	inodes := map[uint64]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		ino, _ := listenInodes(fh, port)
		fh.Close()
		for _, i := range ino {
			inodes[i] = true
		}
	}
	if len(inodes) == 0 {
		return 0, ""
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, ""
	}
	for _, p := range procs {
		n, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err == nil && inodes[ino] {
				c, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				return n, strings.TrimSpace(string(c))
			}
		}
	}
	return 0, ""
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listenInodes parses a /proc/net/tcp or /proc/net/tcp6 table and returns
// the inodes of the sockets listening on port. A malformed line is an error
// naming its number; lines before it are still used.
func listenInodes(r io.Reader, port int) ([]uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []uint64
	line := 0
	for sc.Scan() {
		line++
		fields := bytes.Fields(sc.Bytes())
		if line == 1 && len(fields) > 0 && string(fields[0]) == "sl" {
			continue // header
		}
		if len(fields) == 0 {
			continue
		}
		// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
		if len(fields) < 10 {
			return out, fmt.Errorf("line %d: %d fields, want at least 10", line, len(fields))
		}
		local := string(fields[1])
		i := strings.LastIndexByte(local, ':')
		if i < 0 {
			return out, fmt.Errorf("line %d: local address %q has no port", line, local)
		}
		p, err := strconv.ParseUint(local[i+1:], 16, 16)
		if err != nil {
			return out, fmt.Errorf("line %d: local port %q: %w", line, local[i+1:], err)
		}
		if int(p) != port || string(fields[3]) != tcpListen {
			continue
		}
		ino, err := strconv.ParseUint(string(fields[9]), 10, 64)
		if err != nil {
			return out, fmt.Errorf("line %d: inode %q: %w", line, fields[9], err)
		}
		if ino != 0 {
			out = append(out, ino)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}
