package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/agent/bmc"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/secret"
	"github.com/fleetup/fleetup/target"
	"github.com/fleetup/fleetup/transport/smb"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
	"github.com/fleetup/fleetup/transport/tlspin"
)

// nodeOptions are the flags every command that reaches nodes shares.
type nodeOptions struct {
	Targets           stringList
	NodesFile         string
	User              string
	PasswordFile      string
	PasswordEnv       string
	Identities        stringList
	NoAgent           bool
	KnownHosts        string
	AcceptNewHostKeys bool
	EnginePort        int
	// EnginePortExplicit is true when the user chose EnginePort (flag,
	// environment or ini file): a chosen port never moves on the node.
	EnginePortExplicit bool
	EngineIdle         time.Duration
	ConnectTimeout     time.Duration
	FwupdPlugins       string
	StateDir           string
	Parallel           int
	JSON               bool
	Tunnel             bool
	// InputFile is an HP SUM input file ([TARGETS] HOST= UID= PWD= [END]).
	InputFile string
	// BMC nodes: the user of bmc:// targets that name none, a password
	// file of their own, the certificate pins, the reset timeout.
	BMCUser         string
	BMCPasswordFile string
	KnownCerts      string
	BMCResetTimeout time.Duration
	BMCPoll         time.Duration
	// SMBEncrypt refuses Windows nodes whose SMB session is not encrypted.
	SMBEncrypt bool
	// SMBMinDialect is --smb-min-dialect: the oldest SMB dialect a
	// Windows node may speak (2.1 by default; never SMB1).
	SMBMinDialect smb.Dialect

	// input is the parsed InputFile; groupPasswords are its PWD= values
	// by target (Target.String()), used instead of the run's password.
	input          *target.InputFile
	groupPasswords map[string]target.Secret
}

func (o *nodeOptions) register(fs *flag.FlagSet) {
	fs.Var(&o.Targets, "target", "a node as [user@]host[:port]; IPv6 in brackets (repeatable)")
	fs.StringVar(&o.NodesFile, "nodes", "", "a file of targets, one per line (- for stdin)")
	fs.StringVar(&o.User, "user", "root", "user for targets that name none")
	fs.StringVar(&o.PasswordFile, "password-file", "", "file holding the SSH (and sudo) password (mode 0600)")
	fs.StringVar(&o.PasswordEnv, "password-env", "FLEETUP_PASSWORD", "environment variable holding the password")
	fs.Var(&o.Identities, "identity", "SSH private key file (repeatable)")
	fs.BoolVar(&o.NoAgent, "no-agent", false, "do not use the SSH agent at SSH_AUTH_SOCK")
	fs.StringVar(&o.KnownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	fs.BoolVar(&o.AcceptNewHostKeys, "accept-new-host-keys", false, "accept and record the SSH host key (or BMC certificate) of a node not yet known (a changed one is always refused)")
	fs.IntVar(&o.EnginePort, "engine-port", 0, "port the engine listens on at the node (default 62286, moved when taken)")
	fs.DurationVar(&o.EngineIdle, "engine-idle-timeout", 60*time.Second, "the engine removes itself after this long without the manager")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 15*time.Second, "bound on reaching a node over SSH")
	fs.StringVar(&o.FwupdPlugins, "fwupd-plugins", "", "comma-separated fwupd plugins to load on nodes (e.g. test)")
	fs.StringVar(&o.StateDir, "state-dir", "", "where the crash journal and FTP credentials live (default "+runstate.DefaultDir()+")")
	fs.IntVar(&o.Parallel, "parallel", 16, "nodes worked on at once")
	fs.BoolVar(&o.JSON, "json", false, "print events and results as JSON lines")
	fs.BoolVar(&o.Tunnel, "tunnel", false, "carry all of a node's traffic through its SSH connection (used anyway when a node cannot reach the manager)")
	fs.StringVar(&o.InputFile, "inputfile", "", "an HP SUM input file: [TARGETS] sections of HOST=, UID=, PWD= (the file must then be mode 0600) ... [END]")
	fs.StringVar(&o.BMCUser, "bmc-user", "", "user for bmc:// targets that name none")
	fs.StringVar(&o.BMCPasswordFile, "bmc-password-file", "", "file holding the BMCs' password (mode 0600); without it BMCs get the password of the other nodes")
	fs.StringVar(&o.KnownCerts, "known-certs", "", "file of pinned BMC certificates (default fleetup_known_certs beside the known hosts file); --accept-new-host-keys records new ones")
	fs.DurationVar(&o.BMCResetTimeout, "bmc-reset-timeout", bmc.DefaultResetTimeout, "how long a BMC may take to come back after a flash")
	fs.DurationVar(&o.BMCPoll, "bmc-poll", 2*time.Second, "how often a BMC's update progress is read")
	registerSMBFlags(fs, &o.SMBEncrypt, &o.SMBMinDialect)
}

// registerSMBFlags adds --smb-encrypt and --smb-min-dialect.
func registerSMBFlags(fs *flag.FlagSet, encrypt *bool, min *smb.Dialect) {
	fs.BoolVar(encrypt, "smb-encrypt", false, "require an encrypted SMB session (SMB 3) with windows:// nodes: an SMB 2.x node is refused")
	fs.Func("smb-min-dialect", "the oldest SMB dialect a windows:// node may speak: 2.1 (default), 3.0, 3.0.2, 3.1.1, or 2.0.2 for test stand-ins; SMB1 never", func(v string) error {
		d, ok := map[string]smb.Dialect{"2.0.2": smb.SMB202, "2.1": smb.SMB210, "3.0": smb.SMB300, "3.0.2": smb.SMB302, "3.1.1": smb.SMB311}[v]
		if !ok {
			return fmt.Errorf("%q: not one of 2.0.2, 2.1, 3.0, 3.0.2, 3.1.1", v)
		}
		*min = d
		return nil
	})
}

// targets reads every target the user named, in order, with duplicates
// refused.
func (o *nodeOptions) targets(env *Env) ([]target.Target, error) {
	// No child of the manager (firewall tools, the local node's
	// installers) ever sees the password variable.
	proc.Secret(o.PasswordEnv)
	var ts []target.Target
	for _, s := range o.Targets {
		t, err := target.Parse(s)
		if err != nil {
			return nil, usagef("--target %q: %w", s, err)
		}
		ts = append(ts, t)
	}
	if o.NodesFile != "" {
		var r io.Reader
		name := o.NodesFile
		if name == "-" {
			r, name = env.Stdin, "stdin"
		} else {
			f, err := os.Open(name)
			if err != nil {
				return nil, usagef("nodes file: %w", err)
			}
			defer f.Close()
			r = f
		}
		more, err := target.ParseList(r, name)
		if err != nil {
			return nil, usagef("%w", err)
		}
		ts = append(ts, more...)
	}
	fromInput, err := o.readInputFile()
	if err != nil {
		return nil, err
	}
	ts = append(ts, fromInput...)
	seen := map[string]bool{}
	for i := range ts {
		if err := o.complete(&ts[i]); err != nil {
			return nil, err
		}
		k := ts[i].String()
		if seen[k] {
			return nil, usagef("target %s is named twice", k)
		}
		seen[k] = true
	}
	// Input file passwords are keyed by the complete target.
	if o.input != nil {
		o.groupPasswords = map[string]target.Secret{}
		for _, g := range o.input.Groups {
			for _, t := range g.Targets {
				if t.User == "" {
					t.User = g.User
				}
				if err := o.complete(&t); err != nil {
					return nil, err
				}
				if g.Password != nil {
					o.groupPasswords[t.String()] = g.Password
				}
			}
		}
	}
	if o.Parallel < 1 {
		return nil, usagef("--parallel %d: must be at least 1", o.Parallel)
	}
	if o.EnginePort < 0 || o.EnginePort > 65535 {
		return nil, usagef("--engine-port %d: not a port", o.EnginePort)
	}
	if o.BMCResetTimeout < 0 {
		return nil, usagef("--bmc-reset-timeout %v: must be positive", o.BMCResetTimeout)
	}
	if o.BMCPoll < 0 {
		return nil, usagef("--bmc-poll %v: must be positive", o.BMCPoll)
	}
	return ts, nil
}

// complete fills in what a target left to the flags: its user and port.
func (o *nodeOptions) complete(t *target.Target) error {
	if t.Port == 0 {
		t.Port = t.Kind.DefaultPort()
	}
	if t.User != "" {
		return nil
	}
	switch t.Kind {
	case target.KindBMC:
		if o.BMCUser == "" {
			return usagef("target %s names no user: write bmc://USER@HOST, or give --bmc-user", t)
		}
		t.User = o.BMCUser
	case target.KindWindows:
		// --user is root by default, which no Windows node has.
		return usagef("target %s names no user: write windows://USER@HOST or windows://DOMAIN\\USER@HOST (an administrator of the node)", t)
	default:
		t.User = o.User
	}
	return nil
}

// readInputFile reads --inputfile: its targets, each with its section's
// UID= as user unless the HOST= names one. A file that holds passwords
// must be readable by its owner only.
func (o *nodeOptions) readInputFile() ([]target.Target, error) {
	if o.InputFile == "" {
		return nil, nil
	}
	f, err := os.Open(o.InputFile)
	if err != nil {
		return nil, usagef("input file: %w", err)
	}
	defer f.Close()
	in, err := target.ParseHPSUMInput(f, o.InputFile)
	if err != nil {
		return nil, usagef("input file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, usagef("input file: %w", err)
	}
	var ts []target.Target
	hasPassword := false
	for _, g := range in.Groups {
		hasPassword = hasPassword || g.Password != nil
		for _, t := range g.Targets {
			if t.User == "" {
				t.User = g.User
			}
			ts = append(ts, t)
		}
	}
	if perm := fi.Mode().Perm(); hasPassword && perm&0o077 != 0 {
		for _, g := range in.Groups {
			g.Password.Zero()
		}
		return nil, usagef("input file %s holds passwords (PWD=) but is readable by group or others (mode %04o): restrict it with chmod 600 %s", o.InputFile, perm, o.InputFile)
	}
	o.input = in
	return ts, nil
}

// passwordFor is the password to log in to t with: its input file
// section's PWD= when it has one, else the run's.
func (o *nodeOptions) passwordFor(t target.Target, password func() ([]byte, error)) func() ([]byte, error) {
	if pw, ok := o.groupPasswords[t.String()]; ok {
		return func() ([]byte, error) { return append([]byte(nil), pw...), nil }
	}
	return password
}

// bmcPassword is the password of a BMC target: --bmc-password-file, else
// its input file section's PWD=, else the run's.
func (o *nodeOptions) bmcPassword(ctx context.Context, t target.Target, password func() ([]byte, error)) func() ([]byte, error) {
	if o.BMCPasswordFile != "" {
		return func() ([]byte, error) {
			return secret.Password(ctx, secret.Source{File: o.BMCPasswordFile})
		}
	}
	return o.passwordFor(t, password)
}

// knownCerts is the file of pinned BMC certificates.
func (o *nodeOptions) knownCerts() string {
	if o.KnownCerts != "" {
		return o.KnownCerts
	}
	return tlspin.DefaultPath(o.knownHosts())
}

// applyPorts takes the engine port of the port configuration c (which
// read --engine-port with the environment and the ini file).
func (o *nodeOptions) applyPorts(c *config.Config) {
	o.EnginePort = c.EnginePort.Value
	o.EnginePortExplicit = c.EnginePort.Explicit()
}

// dial opens an SSH connection to t with the credentials and host-key
// policy of the flags.
func (o *nodeOptions) dial(ctx context.Context, t target.Target, password func() ([]byte, error), signers []gossh.Signer) (*sshtr.Conn, error) {
	return sshtr.Dial(ctx, t.Addr(), sshtr.Options{
		User:              t.User,
		Password:          o.passwordFor(t, password),
		Signers:           signers,
		UseAgent:          !o.NoAgent,
		KnownHostsFile:    o.knownHosts(),
		AcceptNewHostKeys: o.AcceptNewHostKeys,
		Timeout:           o.ConnectTimeout,
	})
}

// sudoPassword is the password sudo gets on a node where t's user is not
// root: nil when none was supplied (sudo then must not ask: NOPASSWD).
func (o *nodeOptions) sudoPassword(t target.Target, password func() ([]byte, error)) func() ([]byte, error) {
	if t.User == "root" {
		return nil
	}
	if _, ok := o.groupPasswords[t.String()]; ok {
		return o.passwordFor(t, password)
	}
	// secret.Password unsets the variable once read: InEnv remembers.
	if o.PasswordFile == "" && !secret.InEnv(o.PasswordEnv) && !isTerminal() {
		return nil
	}
	return password
}

func (o *nodeOptions) plugins() []string {
	if o.FwupdPlugins == "" {
		return nil
	}
	return strings.Split(o.FwupdPlugins, ",")
}

// password returns a function that gets the password once, on first use,
// from the file, the environment or the terminal, and keeps it in memory
// for the run only.
func (o *nodeOptions) password(ctx context.Context, env *Env) func() ([]byte, error) {
	var once sync.Once
	var pw []byte
	var err error
	return func() ([]byte, error) {
		once.Do(func() {
			pw, err = secret.Password(ctx, secret.Source{File: o.PasswordFile, Env: o.PasswordEnv, Prompt: "fleetup: SSH password: "})
		})
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), pw...), nil
	}
}

// signers loads the --identity keys. It also checks the --password-file
// (mode, owner) now, so that a file others can read stops the command
// before any node is reached, not when a node first asks.
func (o *nodeOptions) signers() ([]gossh.Signer, error) {
	for _, f := range []struct{ flag, file string }{{"--password-file", o.PasswordFile}, {"--bmc-password-file", o.BMCPasswordFile}} {
		if f.file == "" {
			continue
		}
		pw, err := secret.Password(context.Background(), secret.Source{File: f.file})
		if err != nil {
			return nil, usagef("%s: %w", f.flag, err)
		}
		clear(pw)
	}
	var out []gossh.Signer
	for _, f := range o.Identities {
		s, err := sshtr.LoadIdentity(f, nil)
		if err != nil {
			return nil, usagef("--identity %s: %w", f, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (o *nodeOptions) knownHosts() string {
	if o.KnownHosts != "" {
		return o.KnownHosts
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ssh", "known_hosts")
}

// nodes turns targets into the run's nodes (manager.Reach) with the
// credentials and the host-key policy of the flags.
func (o *nodeOptions) nodes(ctx context.Context, ts []target.Target, password func() ([]byte, error), signers []gossh.Signer) []manager.Node {
	reach := &manager.Reach{
		Password:           func(t target.Target) manager.Secret { return o.passwordFor(t, password) },
		SudoPassword:       func(t target.Target) manager.Secret { return o.sudoPassword(t, password) },
		BMCPassword:        func(t target.Target) manager.Secret { return o.bmcPassword(ctx, t, password) },
		Signers:            signers,
		UseAgent:           !o.NoAgent,
		KnownHosts:         o.knownHosts(),
		KnownCerts:         o.knownCerts(),
		AcceptNew:          o.AcceptNewHostKeys,
		ConnectTimeout:     o.ConnectTimeout,
		EnginePort:         o.EnginePort,
		EnginePortExplicit: o.EnginePortExplicit,
		EngineIdle:         o.EngineIdle,
		FwupdPlugins:       o.plugins(),
		Tunnel:             o.Tunnel,
		BMCResetTimeout:    o.BMCResetTimeout,
		BMCPoll:            o.BMCPoll,

		SMBRequireEncryption: o.SMBEncrypt,
		SMBMinDialect:        o.SMBMinDialect,
	}
	return reach.Nodes(ts)
}

// serverOrder is manager.ServerOrder.
func serverOrder(ts []target.Target) []target.Target { return manager.ServerOrder(ts) }

func isTerminal() bool {
	f, err := os.Open("/dev/tty")
	if err != nil {
		return false
	}
	f.Close()
	return true
}
