package lab_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
)

// TestSamba checks a node's real smbd: the copy round trip over IPv4 and
// IPv6, a wrong password refused, service creation refused by its SCM, and
// nothing left after Close.
func TestSamba(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, append(lab.SambaTools, "smbclient", "net")...)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Nodes[0]
	start := time.Now()
	s, err := n.StartSamba(lab.SambaOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("smbd started in %v", time.Since(start).Round(time.Millisecond))
	auth := smbAuthFile(t, lab.UserPassword, l.Password())
	for _, a := range n.Addrs() {
		copyCycle(t, auth, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := smbclient(ctx, smbAuthFile(t, lab.UserPassword, "wrong"), n.IPv6, "ls")
	if err == nil || !strings.Contains(out, "NT_STATUS_LOGON_FAILURE") {
		t.Errorf("smbclient with a wrong password: %v: %s", err, out)
	}
	out, err = netRPC(ctx, auth, n.IPv4, "service", "create", "fltest", "fltest", `C:\Windows\Temp\x.exe`)
	if err == nil || !strings.Contains(out, "WERR_ACCESS_DENIED") {
		t.Errorf("net rpc service create on Samba: %v: %s", err, out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Share()); !os.IsNotExist(err) {
		t.Errorf("share %s after Close: %v", s.Share(), err)
	}
	pids, _ := n.Exec(ctx, "sh", "-c", "pgrep -x smbd || true")
	if strings.TrimSpace(string(pids)) != "" {
		t.Errorf("smbd processes after Close: %s", pids)
	}
}
