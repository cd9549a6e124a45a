//go:build linux

package local_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/agent/agenttest"
	"github.com/fleetup/fleetup/agent/local"
	"github.com/fleetup/fleetup/wire"
)

// The local agent passes the conformance suite (all but the lost
// connection: it has none to lose).
func TestConformance(t *testing.T) {
	var runs []string
	agenttest.Run(t, agenttest.Harness{
		MarkerDir: t.TempDir(),
		Open: func(t *testing.T, _ []*fleetup.Component) agent.Agent {
			run := fmt.Sprintf("20260101-000000-%06x", time.Now().UnixNano()&0xffffff)
			runs = append(runs, run)
			a, err := local.New(local.Options{RunID: run})
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		Leftovers: func(t *testing.T) []string {
			var left []string
			for _, run := range runs {
				m, _ := filepath.Glob(filepath.Join(os.TempDir(), wire.DirPrefix+run+".*"))
				left = append(left, m...)
			}
			return left
		},
	})
}
