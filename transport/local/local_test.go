//go:build unix

package local

import (
	"testing"

	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/transport/transporttest"
)

func TestSuite(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transport.Conn {
		c, err := New()
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
