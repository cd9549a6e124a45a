package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
)

// SudoersFile is the sudoers drop-in the lab installs (and leaves).
const SudoersFile = "/etc/sudoers.d/fleetup-lab"

const sudoers = `# Installed by fleetup's test lab (package lab).
` + UserSudo + ` ALL=(ALL:ALL) ALL
` + UserSudoNoPass + ` ALL=(ALL:ALL) NOPASSWD: ALL
`

// setupLock serialises user and password set-up between labs of all
// processes on this machine.
func withSetupLock(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(StateDir, "setup.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return fn()
}

// labPassword returns the machine's lab password, making it on first use.
func labPassword() (string, error) {
	var pw string
	err := withSetupLock(func() error {
		path := filepath.Join(StateDir, "password")
		b, err := os.ReadFile(path)
		if err == nil && len(bytes.TrimSpace(b)) >= 16 {
			pw = string(bytes.TrimSpace(b))
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read lab password: %w", err)
		}
		raw := make([]byte, 18)
		if _, err := rand.Read(raw); err != nil {
			return err
		}
		pw = "Fl-" + base64.RawURLEncoding.EncodeToString(raw)
		return os.WriteFile(path, []byte(pw+"\n"), 0o600)
	})
	return pw, err
}

// ensureUsers creates the lab users when missing, sets their password and
// installs the sudoers drop-in. The password goes to chpasswd on stdin.
func ensureUsers(ctx context.Context, password string) error {
	return withSetupLock(func() error {
		for _, u := range Users {
			if _, err := user.Lookup(u); err == nil {
				continue
			}
			// -M: the home lives on each node's private /home, not the host's.
			if out, err := exec.CommandContext(ctx, "useradd", "-M", "-U", "-d", "/home/"+u, "-s", "/bin/bash", u).CombinedOutput(); err != nil {
				return fmt.Errorf("useradd %s: %w: %s", u, err, bytes.TrimSpace(out))
			}
		}
		var in strings.Builder
		for _, u := range []string{UserPassword, UserSudo, UserSudoNoPass} {
			fmt.Fprintf(&in, "%s:%s\n", u, password)
		}
		if err := chpasswd(ctx, in.String()); err != nil {
			return err
		}
		// UserKey gets a hash no password matches: key logins only.
		if err := chpasswd(ctx, UserKey+":*\n", "-e"); err != nil {
			return err
		}
		return installSudoers(ctx)
	})
}

// chpasswd feeds lines "user:password" to chpasswd on stdin.
func chpasswd(ctx context.Context, lines string, args ...string) error {
	cmd := exec.CommandContext(ctx, "chpasswd", args...)
	cmd.Stdin = strings.NewReader(lines)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chpasswd: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func installSudoers(ctx context.Context) error {
	if b, err := os.ReadFile(SudoersFile); err == nil && string(b) == sudoers {
		return nil
	}
	tmp := SudoersFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(sudoers), 0o440); err != nil {
		return fmt.Errorf("write sudoers: %w", err)
	}
	if err := os.Chmod(tmp, 0o440); err != nil {
		os.Remove(tmp)
		return err
	}
	if out, err := exec.CommandContext(ctx, "visudo", "-cf", tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("visudo -cf %s: %w: %s", tmp, err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, SudoersFile); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install sudoers: %w", err)
	}
	return nil
}
