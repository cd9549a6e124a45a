package bmcsim

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpSocket stops a listening TCP socket with shutdown(2), which on Linux
// takes it out of the listening state (connections are refused, a blocked
// accept returns EINVAL) without closing it, and restarts it by binding it
// to its old address again and listening.
type tcpSocket struct {
	rc   syscall.RawConn
	addr unix.Sockaddr // the bound address, read before the first stop
}

func newListenSocket(ln net.Listener) listenSocket {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	s := &tcpSocket{rc: rc}
	var serr error
	if err := rc.Control(func(fd uintptr) { s.addr, serr = unix.Getsockname(int(fd)) }); err != nil || serr != nil {
		return nil
	}
	return s
}

func (s *tcpSocket) stop() error {
	var serr error
	if err := s.rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_RD) }); err != nil {
		return fmt.Errorf("stop listening: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("stop listening: shutdown: %w", serr)
	}
	return nil
}

func (s *tcpSocket) restart() error {
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		// A socket bound to an explicit port keeps it; one bound to port
		// 0 lost it with the shutdown and must be bound again.
		if err := unix.Bind(int(fd), s.addr); err != nil && err != unix.EINVAL {
			serr = fmt.Errorf("bind: %w", err)
			return
		}
		if err := unix.Listen(int(fd), unix.SOMAXCONN); err != nil {
			serr = fmt.Errorf("listen: %w", err)
			return
		}
		now, err := unix.Getsockname(int(fd))
		if err != nil {
			serr = fmt.Errorf("getsockname: %w", err)
			return
		}
		if sockPort(now) != sockPort(s.addr) {
			serr = fmt.Errorf("listening on port %d instead of %d", sockPort(now), sockPort(s.addr))
		}
	})
	if err != nil {
		return fmt.Errorf("listen again: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("listen again: %w", serr)
	}
	return nil
}

func sockPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return -1
}
