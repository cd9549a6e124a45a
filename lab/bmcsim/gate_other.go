//go:build !linux

package bmcsim

import "net"

// newListenSocket: only Linux can stop a listening socket in place; other
// systems reset connections while the gate is shut.
func newListenSocket(net.Listener) listenSocket { return nil }
