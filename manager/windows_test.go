package manager

import (
	"testing"
	"time"

	"github.com/fleetup/fleetup/target"
)

func TestReachWindows(t *testing.T) {
	ts := []target.Target{}
	for _, s := range []string{`windows://LAB\admin@198.18.3.2`, "windows://w2:4445", "windows://admin@[fd42:5e:0:3::2]"} {
		tg, err := target.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tg)
	}
	r := &Reach{
		Password:             func(target.Target) Secret { return func() ([]byte, error) { return []byte("pw"), nil } },
		SMBRequireEncryption: true,
		EnginePort:           62300,
		ConnectTimeout:       5 * time.Second,
	}
	nodes := r.Nodes(ts)
	want := []struct{ name, addr, domain, user string }{
		{`windows://LAB\admin@198.18.3.2`, "198.18.3.2:445", "LAB", "admin"},
		{"windows://w2:4445", "w2:4445", "", ""},
		{"windows://admin@[fd42:5e:0:3::2]", "[fd42:5e:0:3::2]:445", "", "admin"},
	}
	for i, n := range nodes {
		w, ok := n.Opener.(*WindowsNode)
		if !ok {
			t.Fatalf("%s: opener %T", n.Name, n.Opener)
		}
		if n.Name != want[i].name || w.Addr != want[i].addr || w.Domain != want[i].domain || w.User != want[i].user ||
			!w.RequireEncryption || w.EnginePort != 62300 || w.Password == nil {
			t.Errorf("node %d: %s %+v", i, n.Name, w)
		}
	}
}
