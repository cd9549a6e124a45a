package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// x/crypto/ssh has no typed error for a client whose authentication was
// refused, so authFailure matches the library's message: this test fails
// when a new x/crypto/ssh words it otherwise.
func TestAuthFailureMatchesXCrypto(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	srvConf := &ssh.ServerConfig{PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
		return nil, errors.New("wrong")
	}}
	srvConf.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		srv, err := ln.Accept()
		if err != nil {
			return
		}
		defer srv.Close()
		_, _, _, _ = ssh.NewServerConn(srv, srvConf)
	}()
	cli, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_ = cli.SetDeadline(time.Now().Add(30 * time.Second))
	_, _, _, err = ssh.NewClientConn(cli, "node:22", &ssh.ClientConfig{
		User:            "u",
		Auth:            []ssh.AuthMethod{ssh.Password("not-it")},
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
	})
	if err == nil {
		t.Fatal("login with a refused password succeeded")
	}
	ae := authFailure(err, "node:22", "u")
	if ae == nil {
		t.Fatalf("authFailure does not recognise x/crypto/ssh's %q", err)
	}
	if len(ae.Methods) != 1 || ae.Methods[0] != "password" {
		t.Errorf("methods %v, want [password]", ae.Methods)
	}
	if authFailure(errors.New("ssh: handshake failed: EOF"), "node:22", "u") != nil {
		t.Error("a handshake failure taken for an authentication failure")
	}
}
