package proc_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/transport/local"
)

// childEnvSetup puts secrets and a foreign locale into this process's
// environment, the way a manager started by a user with an agent and a
// password variable has them.
func childEnvSetup(t *testing.T) {
	t.Helper()
	for k, v := range map[string]string{
		"FLEETUP_PASSWORD":     "pw-default",
		"SSH_AUTH_SOCK":        "/tmp/agent.sock",
		"SSH_AGENT_PID":        "4242",
		"FLEETUP_TEST_MY_PW":   "pw-named",
		"FLEETUP_TEST_VISIBLE": "yes",
		"LC_ALL":               "de_DE.UTF-8",
		"LANG":                 "de_DE.UTF-8",
		"LANGUAGE":             "de:en",
	} {
		t.Setenv(k, v)
	}
	proc.Secret("FLEETUP_TEST_MY_PW")
}

// checkChildEnv fails unless env (the output of `env`) has no secret, the
// C locale, and the visible variable.
func checkChildEnv(t *testing.T, env string) {
	t.Helper()
	vars := map[string]string{}
	for _, l := range strings.Split(env, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			if _, dup := vars[k]; dup {
				t.Errorf("%s is set twice in the child's environment", k)
			}
			vars[k] = v
		}
	}
	for _, k := range []string{"FLEETUP_PASSWORD", "SSH_AUTH_SOCK", "SSH_AGENT_PID", "FLEETUP_TEST_MY_PW", "LANGUAGE"} {
		if v, ok := vars[k]; ok {
			t.Errorf("the child sees %s=%s", k, v)
		}
	}
	for k, want := range map[string]string{"LC_ALL": "C", "LANG": "C", "FLEETUP_TEST_VISIBLE": "yes"} {
		if vars[k] != want {
			t.Errorf("the child has %s=%q, want %q", k, vars[k], want)
		}
	}
	for _, pw := range []string{"pw-default", "pw-named", "agent.sock"} {
		if strings.Contains(env, pw) {
			t.Errorf("the child's environment holds %q", pw)
		}
	}
}

func TestRunnerChildrenGetNoSecrets(t *testing.T) {
	childEnvSetup(t)
	// Secrets given explicitly are dropped too: nothing may hand them on.
	r := &proc.Runner{Marker: "m1", Env: []string{"FLEETUP_TEST_MY_PW=again", "NO_COLOR=1"}}
	out, err := r.Output(context.Background(), "env")
	if err != nil {
		t.Fatal(err)
	}
	checkChildEnv(t, string(out))
	if !bytes.Contains(out, []byte("\nNO_COLOR=1\n")) || !bytes.Contains(out, []byte(proc.MarkerVar+"=m1")) {
		t.Errorf("the runner's own variables are missing:\n%s", out)
	}

	cmd := r.Command(context.Background(), []string{"SSH_AUTH_SOCK=/x"}, "env")
	var buf bytes.Buffer
	cmd.Stdout = &buf
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	checkChildEnv(t, buf.String())
	if got := r.Getenv("FLEETUP_PASSWORD"); got != "" {
		t.Errorf("Getenv(FLEETUP_PASSWORD) = %q: the runner's commands must not see it", got)
	}
}

func TestRunnerLocaleOverride(t *testing.T) {
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	r := &proc.Runner{Env: []string{"LC_ALL=C.UTF-8"}}
	out, err := r.Output(context.Background(), "sh", "-c", `printf %s "$LC_ALL"`)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "C.UTF-8" {
		t.Errorf("LC_ALL = %q, want the runner's own C.UTF-8", out)
	}
}

// The local transport runs the manager's commands on its own machine: its
// children must be scrubbed the same way.
func TestLocalTransportChildrenGetNoSecrets(t *testing.T) {
	childEnvSetup(t)
	c, err := local.New()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := c.Run(context.Background(), "env", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	checkChildEnv(t, out.String())

	p, err := c.Start(context.Background(), "env")
	if err != nil {
		t.Fatal(err)
	}
	var started bytes.Buffer
	if _, err := started.ReadFrom(p.Stdout()); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	checkChildEnv(t, started.String())
}

func TestSecretConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				name := fmt.Sprintf("FLEETUP_TEST_CONC_%d_%d", i, j)
				proc.Secret(name)
				if !proc.IsSecret(name) {
					t.Errorf("%s not secret after Secret", name)
					return
				}
				_ = proc.Environ()
			}
		}()
	}
	wg.Wait()
	for _, n := range []string{"FLEETUP_PASSWORD", "SSH_AUTH_SOCK", "SSH_AGENT_PID"} {
		if !proc.IsSecret(n) {
			t.Errorf("%s is not secret", n)
		}
	}
	if proc.IsSecret("PATH") {
		t.Error("PATH is secret")
	}
}
