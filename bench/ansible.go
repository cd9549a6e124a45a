package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/lab"
)

// The peer's configuration: as fast as ansible-core goes for this job, with
// host keys checked against the lab's known_hosts like fleetup does.
const ansibleCfg = `[defaults]
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
nocolor = True
[ssh_connection]
pipelining = True
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s
control_path_dir = %s
`

// The equivalent of a fleetup deploy of one cab: copy it, flash it as
// fleetup's fwupd installer does (same arguments and environment), remove it.
const ansiblePlay = `- hosts: fleet
  gather_facts: false
  tasks:
    - name: copy the firmware
      copy: {src: %q, dest: /tmp/fleetup-bench.cab, mode: "0600"}
    - name: flash it
      command: fwupdtool install /tmp/fleetup-bench.cab --no-reboot-check%s
      environment: {NO_COLOR: "1", LC_ALL: "C"}
    - name: remove it
      file: {path: /tmp/fleetup-bench.cab, state: absent}
`

// ansibleRun is one ansible invocation measured.
type ansibleRun struct {
	Wall time.Duration
	CPU  time.Duration // user+system of ansible and its children (forks, ssh)
}

// ansible runs ansible-playbook (playbook != "") or ansible -m setup on
// nodes with forks = len(nodes), in a fresh directory, with fresh control
// masters that it closes afterwards (untimed), so that no round starts warm.
func (f *fleet) ansible(ctx context.Context, nodes []*lab.Node, deploy bool) (*ansibleRun, error) {
	dir, err := os.MkdirTemp(f.work, "ansible-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "cp")
	if err := os.Mkdir(cp, 0o700); err != nil {
		return nil, err
	}
	var inv strings.Builder
	inv.WriteString("[fleet]\n")
	for _, n := range nodes {
		inv.WriteString(strings.Trim(n.Addr(), "[]") + "\n")
	}
	fmt.Fprintf(&inv, "[fleet:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'\n",
		f.lab.KeyFile(), f.lab.KnownHostsFile())
	files := map[string]string{
		"inventory":   inv.String(),
		"ansible.cfg": fmt.Sprintf(ansibleCfg, cp),
	}
	plugins := ""
	if f.plugins != "" {
		plugins = " --plugins " + f.plugins
	}
	files["play.yml"] = fmt.Sprintf(ansiblePlay, f.cab, plugins)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	forks := strconv.Itoa(len(nodes))
	var args []string
	name := "ansible-playbook"
	if deploy {
		args = []string{"-i", filepath.Join(dir, "inventory"), "-f", forks, filepath.Join(dir, "play.yml")}
	} else {
		name = "ansible"
		args = []string{"-i", filepath.Join(dir, "inventory"), "-f", forks, "-m", "setup", "fleet"}
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"), "ANSIBLE_HOME="+filepath.Join(dir, "home"), "SSH_AUTH_SOCK=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	err = cmd.Run()
	r := &ansibleRun{Wall: time.Since(t0)}
	if ps := cmd.ProcessState; ps != nil {
		r.CPU = ps.UserTime() + ps.SystemTime()
	}
	closeMasters(cp)
	if err != nil {
		data, _ := os.ReadFile(out.Name())
		return r, fmt.Errorf("%s: %w: %s", name, err, truncate(lastLines(string(data), 8), 2000))
	}
	if !deploy {
		data, _ := os.ReadFile(out.Name())
		if got := bytes.Count(data, []byte("| SUCCESS =>")); got != len(nodes) {
			return r, fmt.Errorf("ansible -m setup: %d of %d nodes succeeded", got, len(nodes))
		}
	}
	return r, nil
}

// closeMasters stops the ssh control masters whose sockets are in dir. They
// left ansible's process group (ControlPersist daemonizes them), so they
// are asked to exit through their sockets.
func closeMasters(dir string) {
	socks, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, s := range socks {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = exec.CommandContext(ctx, "ssh", "-o", "ControlPath="+s, "-O", "exit", "bench-control-master").Run()
		cancel()
	}
}

func ansibleVersion() string {
	out, err := exec.Command("ansible", "--version").Output()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	if i := strings.Index(line, "core "); i >= 0 {
		return strings.TrimRight(line[i+len("core "):], "]")
	}
	return line
}
