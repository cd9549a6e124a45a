package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/transport"
)

// The manager's ports are listened on once per process, however many Runs
// need them at once: the first Run binds, the last one to finish closes.
var (
	listenMu sync.Mutex
	listens  = map[int]*sharedListener{}
)

type sharedListener struct {
	ln   net.Listener // nil: another process holds the port
	refs int
	// held says which other process holds the port, when ln is nil
	// ("pid 123 (python3)"; "another process" when not found).
	held string
}

// heldBy returns who else holds the manager's port p while this process
// checks it, or "" when this process listens on it itself.
func heldBy(p int) string {
	listenMu.Lock()
	defer listenMu.Unlock()
	if s := listens[p]; s != nil {
		return s.held
	}
	return ""
}

// listenManager listens on every port of ports (all addresses, IPv4 and
// IPv6) and accepts and closes whatever connects, until release is called.
// A port already taken (a running fleetup) is left to its holder, which the
// node then connects to as it is.
func listenManager(ctx context.Context, ports []int) (release func()) {
	listenMu.Lock()
	defer listenMu.Unlock()
	for _, p := range ports {
		if s := listens[p]; s != nil {
			s.refs++
			continue
		}
		s := &sharedListener{refs: 1}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(p))
		switch pe := depot.InUse("tcp", p, err); {
		case err == nil:
			s.ln = ln
			go acceptAndClose(ln)
		case pe != nil && pe.PID != 0:
			s.held = strings.TrimPrefix(pe.Error(), fmt.Sprintf("tcp port %d is in use by ", p))
		default:
			s.held = "another process"
		}
		listens[p] = s
	}
	return func() {
		listenMu.Lock()
		defer listenMu.Unlock()
		for _, p := range ports {
			s := listens[p]
			if s == nil {
				continue
			}
			if s.refs--; s.refs == 0 {
				if s.ln != nil {
					s.ln.Close()
				}
				delete(listens, p)
			}
		}
	}
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		c.Close()
	}
}

// dialFromNode tests a node-to-manager hop: from the node, bash opens
// /dev/tcp/MANAGER/PORT inside timeout.
func dialFromNode(ctx context.Context, conn transport.Conn, h *Hop, manager string, timeout time.Duration) {
	addr, err := netip.ParseAddr(manager)
	if err != nil {
		h.Status, h.Detail = Error, fmt.Sprintf("manager address %q: %v", manager, err)
		return
	}
	script := fmt.Sprintf(`command -v bash >/dev/null 2>&1 || { echo '@@fleetup missing bash'; exit 0; }
command -v timeout >/dev/null 2>&1 || { echo '@@fleetup missing timeout'; exit 0; }
s=$(date +%%s%%N 2>/dev/null)
m=$(timeout %s bash -c 'exec 3<>/dev/tcp/%s/%d' 2>&1)
rc=$?
e=$(date +%%s%%N 2>/dev/null)
printf '@@fleetup rc=%%s start=%%s end=%%s\n%%s\n' "$rc" "$s" "$e" "$m"
`, strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64), addr.Unmap(), h.Port)
	// The command's own round trip is bounded too, above the hop's timeout.
	rctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	err = conn.Run(rctx, script, nil, &out, nil)
	took := time.Since(start)
	if err != nil {
		h.Status, h.Took, h.Detail = Error, took, "run the check on the node: "+err.Error()
		return
	}
	res, err := parseDial(out.Bytes())
	if err != nil {
		h.Status, h.Took, h.Detail = Error, took, "the node's check: "+err.Error()
		return
	}
	h.Took = took
	if res.took > 0 {
		h.Took = res.took
	}
	switch {
	case res.missing != "":
		h.Status, h.Detail = Error, fmt.Sprintf("not tested: %s is missing on the node (the node-to-manager check runs bash's /dev/tcp inside timeout)", res.missing)
	case res.rc == 0:
		h.Status, h.Detail = Open, "open"
	case res.rc == 124 || res.rc == 137:
		h.Status, h.Detail = Filtered, fmt.Sprintf("filtered: no answer within %v", timeout)
	case strings.Contains(res.msg, "refused"):
		h.Status, h.Detail = Refused, "refused: "+res.msg
	case strings.Contains(res.msg, "unreachable") || strings.Contains(res.msg, "No route"):
		h.Status, h.Detail = Filtered, "filtered: "+res.msg
	default:
		h.Status, h.Detail = Error, fmt.Sprintf("the connection failed (exit status %d): %s", res.rc, res.msg)
	}
}

// dialResult is what the node-side check printed.
type dialResult struct {
	missing string        // a program the check needs, when missing
	rc      int           // timeout's exit status
	took    time.Duration // 0 when the node could not say
	msg     string        // bash's error, its first line without "bash: "
}

// parseDial reads the node-side check's output: "@@fleetup missing PROG",
// or "@@fleetup rc=N start=NS end=NS" followed by bash's messages.
func parseDial(out []byte) (dialResult, error) {
	var r dialResult
	head, rest, _ := bytes.Cut(out, []byte("\n"))
	fields, ok := bytes.CutPrefix(bytes.TrimSpace(head), []byte("@@fleetup "))
	if !ok {
		return r, fmt.Errorf("unexpected output %q", truncate(head, 80))
	}
	if prog, ok := bytes.CutPrefix(fields, []byte("missing")); ok && (len(prog) == 0 || prog[0] == ' ') {
		if len(bytes.TrimSpace(prog)) == 0 {
			return r, errors.New(`"missing" names no program`)
		}
		r.missing = string(bytes.TrimSpace(prog))
		return r, nil
	}
	var start, end int64
	var haveRC bool
	for _, f := range strings.Fields(string(fields)) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return r, fmt.Errorf("field %q: want key=value", f)
		}
		switch k {
		case "rc":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 255 {
				return r, fmt.Errorf("exit status %q: not 0-255", v)
			}
			r.rc, haveRC = n, true
		case "start":
			start, _ = strconv.ParseInt(v, 10, 64) // busybox date has no %N: measured on the manager then
		case "end":
			end, _ = strconv.ParseInt(v, 10, 64)
		default:
			return r, fmt.Errorf("unknown field %q", k)
		}
	}
	if !haveRC {
		return r, errors.New("no exit status")
	}
	if start > 0 && end >= start {
		r.took = time.Duration(end - start)
	}
	for _, line := range strings.Split(string(rest), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			r.msg = strings.TrimPrefix(line, "bash: ")
			break
		}
	}
	return r, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
