// Package secret gets the password the manager logs in to nodes with,
// without it ever appearing on a command line: from a file that only its
// owner, the current user, can read or write, from an environment
// variable, or from a prompt on the terminal with echo off. The caller
// owns the returned bytes and should zero them (clear) when done.
//
// The environment variable is marked secret in package proc (no command
// the manager starts gets it) and, once read, removed from the process's
// environment, so that nothing started later inherits it.
package secret

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"

	"github.com/fleetup/fleetup/proc"
)

// DefaultEnv is the environment variable read when Source.Env is empty.
const DefaultEnv = "FLEETUP_PASSWORD"

// maxLen bounds a password read from a file or a reader.
const maxLen = 4096

// Source says where a password may come from. Password tries them in
// order: File, then the environment variable, then the prompt.
type Source struct {
	// File is a file holding the password (--password-file); it must be
	// owned by the current user and neither readable nor writable by
	// group or others (a symbolic link is judged by the file it points
	// to). "-" reads standard input (Stdin when set). When File is set it
	// is the only source tried.
	File string
	// Env names the environment variable holding the password;
	// DefaultEnv when empty.
	Env string
	// Prompt, when not empty, is shown on the terminal (/dev/tty) to ask
	// for the password with echo off, if there is a terminal.
	Prompt string
	// Stdin, when set, stands in for the terminal (and for standard input
	// with File "-"): tests use it.
	Stdin io.Reader
}

// ErrNoPassword is wrapped by the error Password returns when no source
// yields a password.
var ErrNoPassword = errors.New("no password")

// Password returns the password from the first source that has one, with
// one trailing newline ("\n" or "\r\n") removed. It marks the environment
// variable secret (proc.Secret) whatever the source, and when the password
// comes from it, unsets it: a second call finds it gone (InEnv still says
// it was there).
func Password(ctx context.Context, src Source) ([]byte, error) {
	env := src.Env
	if env == "" {
		env = DefaultEnv
	}
	proc.Secret(env)
	if src.File != "" {
		return fromFile(src)
	}
	if v, ok := os.LookupEnv(env); ok && v != "" {
		taken.Lock()
		taken.names[env] = true
		taken.Unlock()
		if err := os.Unsetenv(env); err != nil {
			return nil, fmt.Errorf("remove %s from the environment: %w", env, err)
		}
		return trimNewline([]byte(v)), nil
	}
	if src.Prompt != "" {
		pw, err := prompt(ctx, src)
		if err == nil || !errors.Is(err, errNoTerminal) {
			return pw, err
		}
	}
	return nil, fmt.Errorf("%w: give one with --password-file FILE (chmod 600 FILE), in the environment variable %s, or run from a terminal to be asked", ErrNoPassword, env)
}

// taken holds the environment variables Password took a password from.
var taken = struct {
	sync.Mutex
	names map[string]bool
}{names: map[string]bool{}}

// InEnv reports whether the environment variable name (DefaultEnv when
// empty) holds a password, or held one that Password has taken (and so
// removed from the environment). Callers that ask "was a password given
// in the environment?" use it instead of os.Getenv.
func InEnv(name string) bool {
	if name == "" {
		name = DefaultEnv
	}
	if os.Getenv(name) != "" {
		return true
	}
	taken.Lock()
	defer taken.Unlock()
	return taken.names[name]
}

func fromFile(src Source) ([]byte, error) {
	var r io.Reader
	if src.File == "-" {
		r = src.Stdin
		if r == nil {
			r = os.Stdin
		}
	} else {
		// Stat first: opening a FIFO would block.
		pre, err := os.Stat(src.File)
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		if !pre.Mode().IsRegular() {
			return nil, fmt.Errorf("password file %s is not a regular file", src.File)
		}
		f, err := os.Open(src.File)
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		defer f.Close()
		// What counts is the file opened (through any symbolic link), as
		// it is now: fstat, not the path.
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		if !fi.Mode().IsRegular() || !os.SameFile(pre, fi) {
			return nil, fmt.Errorf("password file %s changed while it was opened", src.File)
		}
		if err := checkFile(src.File, fi); err != nil {
			return nil, err
		}
		r = f
	}
	buf := make([]byte, maxLen+1)
	n, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		clear(buf)
		return nil, fmt.Errorf("password file %s: %w", src.File, err)
	}
	if n > maxLen {
		clear(buf)
		return nil, fmt.Errorf("password file %s: longer than %d bytes", src.File, maxLen)
	}
	pw := trimNewline(buf[:n])
	if len(pw) == 0 {
		clear(buf)
		return nil, fmt.Errorf("password file %s is empty", src.File)
	}
	return pw, nil
}

func trimNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

var errNoTerminal = errors.New("no terminal")

func prompt(ctx context.Context, src Source) ([]byte, error) {
	if src.Stdin != nil {
		line, err := bufio.NewReader(io.LimitReader(src.Stdin, maxLen+2)).ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if pw := trimNewline(line); len(pw) > 0 {
			return pw, nil
		}
		return nil, errors.New("read password: empty password")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errNoTerminal
	}
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		tty.Close()
		return nil, fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(tty, src.Prompt)
	type result struct {
		pw  []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		pw, err := term.ReadPassword(fd)
		ch <- result{pw, err}
	}()
	select {
	case r := <-ch:
		fmt.Fprintln(tty)
		tty.Close()
		if r.err != nil {
			return nil, fmt.Errorf("read password: %w", r.err)
		}
		if len(r.pw) == 0 {
			return nil, errors.New("read password: empty password")
		}
		return r.pw, nil
	case <-ctx.Done():
		// The read stays blocked until a line is typed; give the
		// terminal its echo back now.
		term.Restore(fd, state)
		fmt.Fprintln(tty)
		return nil, fmt.Errorf("read password: %w", ctx.Err())
	}
}
