package ssh

import (
	"context"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/transport/transporttest"
)

func TestSuite(t *testing.T) {
	s := startSSHD(t)
	known := s.KnownHosts(t)
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			transporttest.Run(t, func(t *testing.T) transport.Conn {
				c, err := Dial(context.Background(), s.Addr(host), Options{
					User: "root", Signers: []ssh.Signer{s.RootKey}, KnownHostsFile: known,
				})
				if err != nil {
					t.Fatal(err)
				}
				return c
			})
		})
	}
}
