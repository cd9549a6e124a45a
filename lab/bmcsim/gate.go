package bmcsim

import (
	"net"
	"sync"
	"time"
)

// The gate decides whether the BMC takes connections. A BMC that resets, or
// that a test made unreachable, must look to clients like a machine whose
// web server is gone: connections refused (not accepted and then dropped).
// So while the gate is shut each TCP listener's socket stops listening
// (shutdown(2) on a listening socket; see gate_linux.go) and listens again
// on the same address once the gate opens; the socket stays the same, so a
// listener made inside a network namespace stays there. Where that is not
// possible a listener keeps accepting and resets each connection at once.
// Shutting the gate also drops every open connection, as a reset does.

// phase is where a BMC is in a reset.
type phase int

const (
	phaseUp   phase = iota // serving
	phaseDown              // refusing connections
	phase503               // accepting, answering 503 Service Unavailable
)

// gatedListener is one of the BMC's listeners.
type gatedListener struct {
	ln net.Listener
	// sock, if not nil, can stop and restart listening (see gate_linux.go).
	sock listenSocket
}

// listenSocket stops and restarts a listening socket in place.
type listenSocket interface {
	stop() error
	restart() error
}

func newGatedListener(ln net.Listener) *gatedListener {
	return &gatedListener{ln: ln, sock: newListenSocket(ln)}
}

// applyGateLocked opens or shuts the gate as the BMC's state wants. The
// caller holds b.mu.
func (b *BMC) applyGateLocked() {
	want := b.reachable && b.phase != phaseDown
	if b.closed || want == b.listening {
		return
	}
	b.listening = want
	for _, gl := range b.lns {
		if gl.sock == nil {
			continue
		}
		var err error
		if want {
			err = gl.sock.restart()
		} else {
			err = gl.sock.stop()
		}
		if err != nil {
			// The listener keeps its socket and falls back to resetting
			// connections while the gate is shut.
			b.logf("bmcsim: %s: %v (falling back to resetting connections)", gl.ln.Addr(), err)
			gl.sock = nil
		}
	}
	if !want {
		b.closeConnsLocked()
		b.logf("bmcsim: %s: refusing connections", b.opts.Flavor)
	} else {
		b.logf("bmcsim: %s: taking connections", b.opts.Flavor)
	}
	close(b.gateCh)
	b.gateCh = make(chan struct{})
}

// closeConnsLocked drops every open connection. The caller holds b.mu.
func (b *BMC) closeConnsLocked() {
	for c := range b.conns {
		abort(c)
	}
	clear(b.conns)
}

// abort closes c with a reset rather than an orderly close, as a BMC going
// down does.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// gateOpen returns whether the gate is open, and a channel closed at its
// next change.
func (b *BMC) gateOpen() (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listening && !b.closed, b.gateCh
}

// acceptLoop accepts on gl until the BMC closes and hands the connections
// to the HTTP server.
func (b *BMC) acceptLoop(gl *gatedListener) {
	defer b.wg.Done()
	for {
		c, err := gl.ln.Accept()
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			open, changed := b.gateOpen()
			if open {
				// A transient error (out of file descriptors, a
				// connection aborted, or a shutdown that raced a
				// restart): try again shortly.
				select {
				case <-time.After(10 * time.Millisecond):
				case <-b.ctx.Done():
					return
				}
				continue
			}
			select {
			case <-changed:
			case <-b.ctx.Done():
				return
			}
			continue
		}
		if !b.track(c) {
			abort(c)
			continue
		}
		select {
		case b.connCh <- c:
		case <-b.ctx.Done():
			abort(c)
			return
		}
	}
}

// track registers c as open, unless the gate is shut.
func (b *BMC) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.listening || b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *BMC) untrack(c net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
}

// chanListener is the one listener the HTTP server serves: the connections
// every accept loop let through.
type chanListener struct {
	b    *BMC
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.b.connCh:
		return &trackedConn{Conn: c, b: l.b}, nil
	case <-l.b.ctx.Done():
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return nil } // the BMC closes the real listeners
func (l *chanListener) Addr() net.Addr { return l.addr }

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	b    *BMC
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.b.untrack(c.Conn) })
	return c.Conn.Close()
}
