package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/esxi"
	"github.com/fleetup/fleetup/lab"
)

func firewallCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	args, err := translateHPSUM(args)
	if err != nil {
		return "", err
	}
	err = runFirewall(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	return out.String() + errb.String(), err
}

func TestFirewallESXiPrint(t *testing.T) {
	out, err := firewallCmd(t, "esxi", "--port", "8080", "--ssl-port", "8443")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := esxi.RuleXML(esxi.Services(8080, 8443))
	if out != string(want) {
		t.Errorf("printed\n%s\nwant\n%s", out, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "needs a subcommand"},
		{[]string{"linux"}, `unknown subcommand "linux"`},
		{[]string{"esxi", "--port", "0"}, `--port "0": not a port`},
		{[]string{"esxi", "--ssl-port", "70000"}, `--ssl-port "70000": not a port`},
		{[]string{"esxi", "--port", "8080", "--ssl-port", "8080"}, "the two must differ"},
		{[]string{"esxi", "/port", "8081", "/ssl_port", "8081"}, "the two must differ"},
		{[]string{"esxi", "--remove"}, "--remove needs --target"},
		{[]string{"esxi", "extra"}, `unexpected argument "extra"`},
	} {
		_, err := firewallCmd(t, tc.args...)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("firewall %q = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

// esxcliStandIn records its arguments and what the firewall directory
// held when it ran. It has no single quote: setup quotes it with them.
const esxcliStandIn = `#!/bin/sh
echo "$* [$(ls /opt/vmware/firewall | tr "\n" " ")]" >> /opt/calls/esxcli.log
`

// TestFirewallESXiInstallRemove installs the rule on a lab node standing
// in for an ESXi host: /opt (private to the node) holds the firewall
// directory and the esxcli stand-in.
func TestFirewallESXiInstallRemove(t *testing.T) {
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Nodes[0]
	ctx := context.Background()
	setup := "mkdir -p /opt/vmware/firewall /opt/calls && printf '%s' '" + esxcliStandIn + "' > /opt/esxcli && chmod 755 /opt/esxcli"
	if out, err := n.Shell(ctx, setup); err != nil {
		t.Fatalf("set up the stand-in: %v: %s", err, out)
	}
	const listOpt = "find /opt -path /opt/calls -prune -o -printf '%p %m %s\\n' | sort"
	optBefore, err := n.Shell(ctx, listOpt)
	if err != nil {
		t.Fatal(err)
	}
	before, err := n.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"esxi", "--target", "root@" + n.Addr(), "--identity", l.KeyFile(), "--known-hosts", l.KnownHostsFile(),
		"--no-agent", "--password-env", "FLEETUP_TEST_NO_PASSWORD", "--rule-file", "/opt/vmware/firewall/fleetup.xml", "--esxcli", "/opt/esxcli"}

	out, err := firewallCmd(t, append(args, "--port", "63011", "--ssl-port", "63012")...)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if !strings.Contains(out, "installed /opt/vmware/firewall/fleetup.xml") {
		t.Errorf("install said %q", out)
	}
	got, err := n.Exec(ctx, "cat", "/opt/vmware/firewall/fleetup.xml")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := esxi.RuleXML(esxi.Services(63011, 63012))
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("rule file on the node (-want +got):\n%s", diff)
	}
	calls, err := n.Exec(ctx, "cat", "/opt/calls/esxcli.log")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("network firewall refresh [fleetup.xml ]\n", string(calls)); diff != "" {
		t.Errorf("esxcli calls after install (-want +got):\n%s", diff)
	}

	out, err = firewallCmd(t, append(args, "--remove")...)
	if err != nil {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	if !strings.Contains(out, "removed /opt/vmware/firewall/fleetup.xml; firewall refreshed") {
		t.Errorf("remove said %q", out)
	}
	calls, _ = n.Exec(ctx, "cat", "/opt/calls/esxcli.log")
	if diff := cmp.Diff("network firewall refresh [fleetup.xml ]\nnetwork firewall refresh []\n", string(calls)); diff != "" {
		t.Errorf("esxcli calls after remove (-want +got):\n%s", diff)
	}
	optAfter, _ := n.Shell(ctx, listOpt)
	if diff := cmp.Diff(string(optBefore), string(optAfter)); diff != "" {
		t.Errorf("/opt after install and remove differs (-before +after):\n%s", diff)
	}
	// sshd ends a closed connection's session process a moment after
	// the command returned.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		after, err := n.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d := after.Diff(before)
		if d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("install and remove left on the node:\n%s", d)
			break
		}
	}

	out, err = firewallCmd(t, append(args, "--remove")...)
	if err != nil || !strings.Contains(out, "nothing to remove") {
		t.Errorf("second remove = %v, %q; want nothing to remove", err, out)
	}
}
