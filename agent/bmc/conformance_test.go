package bmc_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/agent/agenttest"
	"github.com/fleetup/fleetup/agent/bmc"
	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/lab/bmcsim"
)

// pinned trusts exactly the certificate with fingerprint fp (as
// tlspin does, without its file).
func pinned(fp func() string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			if got := fingerprint(cs.PeerCertificates[0]); got != fp() {
				return fmt.Errorf("certificate %s is not the pinned %s", got, fp())
			}
			return nil
		},
	}
}

func fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(s[:])
}

// simLog logs the simulator's requests with FLEETUP_BMCSIM_LOG=1.
func simLog(t *testing.T) func(string, ...any) {
	if os.Getenv("FLEETUP_BMCSIM_LOG") != "1" {
		return nil
	}
	return func(format string, args ...any) { t.Logf(time.Now().Format("15:04:05.000 ")+format, args...) }
}

// versionSeq makes every image of the suite newer than the last.
var versionSeq atomic.Int64

// TestConformance runs the agent conformance suite against a simulated
// BMC of each flavor, over loopback. The agent has no depot here, so every
// image is pushed (an iLO through its own upload form); pulls are the
// lab's integration tests'.
func TestConformance(t *testing.T) {
	for _, flavor := range bmcsim.Flavors {
		t.Run(string(flavor), func(t *testing.T) { conformance(t, flavor) })
	}
}

func conformance(t *testing.T, flavor bmcsim.Flavor) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := bmcsim.Start(bmcsim.Options{
		Flavor: flavor, User: "admin", Password: "s3cret pass",
		ResetTime: 1500 * time.Millisecond, FlashTime: 2 * time.Second,
		SessionTimeout: 3 * time.Second,
		Logf:           simLog(t),
	}, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	firmware := sim.Firmware()
	// The ids of the suite take the BMC's own firmware and its BIOS in turn.
	targetOf := func(i int) bmcsim.Firmware { return firmware[i%len(firmware)] }
	nameOf := map[string]string{} // component id -> firmware name
	h := agenttest.Harness{
		Open: func(t *testing.T, comps []*fleetup.Component) agent.Agent {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a, err := bmc.Open(ctx, bmc.Options{
				Node:           "bmc-" + string(flavor),
				Endpoint:       sim.URL(),
				User:           "admin",
				Password:       func() ([]byte, error) { return []byte("s3cret pass"), nil },
				TLS:            pinned(sim.Fingerprint),
				ResetTimeout:   30 * time.Second,
				Poll:           200 * time.Millisecond,
				RequestTimeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return a
		},
		Components: func(t *testing.T, delays map[string]time.Duration, ids ...string) []*fleetup.Component {
			dir := t.TempDir()
			for i, id := range ids {
				fw := targetOf(i)
				v := fmt.Sprintf("9.%d", versionSeq.Add(1))
				file := id + ".bin"
				if err := os.WriteFile(filepath.Join(dir, file), bmcsim.Image(fw.Name, v, []byte(strings.Repeat("firmware ", 1000))), 0o644); err != nil {
					t.Fatal(err)
				}
				m := fmt.Sprintf("kind = \"bmc\"\nid = \"agenttest.%s\"\nversion = %q\nfile = %q\ntargets = [%q]\n", id, v, file, fw.Name)
				if err := os.WriteFile(filepath.Join(dir, id+baseline.ManifestSuffix), []byte(m), 0o644); err != nil {
					t.Fatal(err)
				}
				nameOf["agenttest."+id] = fw.Name
			}
			b, err := baseline.Load(dir)
			if err != nil || b.Err() != nil {
				t.Fatalf("baseline: %v %v", err, b.Err())
			}
			// In the order of ids, as the suite expects.
			var out []*fleetup.Component
			for _, id := range ids {
				out = append(out, b.Component("agenttest."+id))
			}
			return out
		},
		Installed: func(t *testing.T, c *fleetup.Component) string {
			for _, fw := range sim.Firmware() {
				if fw.Name == nameOf[c.ID] {
					return bmc.VersionOf(fw.Version, fw.Name)
				}
			}
			return ""
		},
		CheckInventory: func(t *testing.T, inv *fleetup.Inventory) {
			if inv.BMC == nil || inv.BMC.Manager.Model == "" || inv.BMC.Manager.FirmwareVersion == "" || len(inv.BMC.Firmware) != len(firmware) || inv.BMC.System == nil || inv.BMC.System.SerialNumber == "" {
				t.Errorf("BMC inventory lacks manager, firmware or system: %+v", inv.BMC)
			}
		},
		Leftovers: func(t *testing.T) []string {
			if n := sim.OpenSessions(); n > 0 {
				return []string{fmt.Sprintf("%d Redfish session(s)", n)}
			}
			return nil
		},
		Cut: func(t *testing.T) func() {
			sim.SetReachable(false)
			return func() { sim.SetReachable(true) }
		},
		IdleTimeout: 3 * time.Second,
	}
	agenttest.Run(t, h)
}
