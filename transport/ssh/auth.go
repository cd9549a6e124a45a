package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// LoadIdentity reads a private key file (OpenSSH, PKCS#1, PKCS#8 or SEC1
// PEM). passphrase is called only when the key is encrypted; may be nil,
// and the bytes it returns are zeroed after use.
func LoadIdentity(path string, passphrase func() ([]byte, error)) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	defer clear(data)
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("load identity %s: the key is encrypted and no passphrase was given", path)
		}
		pp, perr := passphrase()
		if perr != nil {
			return nil, fmt.Errorf("load identity %s: passphrase: %w", path, perr)
		}
		defer clear(pp)
		signer, err = ssh.ParsePrivateKeyWithPassphrase(data, pp)
		if err != nil {
			return nil, fmt.Errorf("load identity %s: wrong passphrase or damaged key: %w", path, err)
		}
		return signer, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", path, err)
	}
	return signer, nil
}

// auth builds the client's authentication methods and remembers what
// happened, so that Dial can explain a failure.
type auth struct {
	signers  []ssh.Signer
	useAgent bool
	password func() ([]byte, error)

	mu       sync.Mutex
	pw       []byte
	pwErr    error
	asked    bool
	agent    net.Conn
	agentErr error
}

func (a *auth) methods() []ssh.AuthMethod {
	var m []ssh.AuthMethod
	if len(a.signers) > 0 || a.useAgent {
		m = append(m, ssh.PublicKeysCallback(a.publicKeys))
	}
	if a.password != nil {
		m = append(m,
			ssh.PasswordCallback(func() (string, error) {
				pw, err := a.getPassword()
				return string(pw), err
			}),
			ssh.KeyboardInteractive(a.challenge))
	}
	return m
}

func (a *auth) publicKeys() ([]ssh.Signer, error) {
	signers := append([]ssh.Signer(nil), a.signers...)
	if !a.useAgent {
		return signers, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		a.agentErr = errors.New("SSH_AUTH_SOCK is not set")
		return signers, nil
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		a.agentErr = err
		return signers, nil
	}
	a.agent = conn
	more, err := agent.NewClient(conn).Signers()
	if err != nil {
		a.agentErr = err
	}
	return append(signers, more...), nil
}

// getPassword asks the password source once.
func (a *auth) getPassword() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.asked {
		a.asked = true
		a.pw, a.pwErr = a.password()
	}
	return a.pw, a.pwErr
}

// challenge answers keyboard-interactive prompts: the password for every
// hidden prompt (PAM's "Password: "), nothing for the others.
func (a *auth) challenge(name, instruction string, questions []string, echos []bool) ([]string, error) {
	answers := make([]string, len(questions))
	for i := range questions {
		if echos[i] {
			continue
		}
		pw, err := a.getPassword()
		if err != nil {
			return nil, err
		}
		answers[i] = string(pw)
	}
	return answers, nil
}

// done zeroes the password and closes the agent connection.
func (a *auth) done() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.pw)
	a.pw = nil
	if a.agent != nil {
		a.agent.Close()
		a.agent = nil
	}
}

// passwordError is the error the password source returned, if any.
func (a *auth) passwordError() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pwErr
}

var attemptedRE = regexp.MustCompile(`attempted methods \[([^\]]*)\]`)

// authFailure turns x/crypto's "unable to authenticate" into an
// *AuthError, or returns nil for other errors.
func authFailure(err error, host, user string) *AuthError {
	msg := err.Error()
	if !strings.Contains(msg, "unable to authenticate") {
		return nil
	}
	ae := &AuthError{Host: host, User: user}
	if m := attemptedRE.FindStringSubmatch(msg); m != nil {
		for _, method := range strings.Fields(m[1]) {
			if method != "none" {
				ae.Methods = append(ae.Methods, method)
			}
		}
	}
	return ae
}
