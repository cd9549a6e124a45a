package manager

import (
	"context"
	"slices"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/target"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/transport/smb"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
	"github.com/fleetup/fleetup/transport/tlspin"
)

// Secret returns a password when a node first asks for it; nil means the
// node has none (keys or the SSH agent only, or sudo without a password).
type Secret func() ([]byte, error)

// Reach is how a run reaches its nodes: their credentials, the host-key
// and certificate policy, and the engine's settings. The command line
// fills it from its flags, `fleetup serve` from its store.
type Reach struct {
	// Password, SudoPassword and BMCPassword give each target its
	// secrets (nil functions, or a nil Secret: none).
	Password     func(target.Target) Secret
	SudoPassword func(target.Target) Secret
	BMCPassword  func(target.Target) Secret
	Signers      []gossh.Signer
	UseAgent     bool
	// KnownHosts is the SSH known hosts file, KnownCerts the BMC
	// certificate pins (tlspin); AcceptNew records the keys and
	// certificates of nodes met for the first time.
	KnownHosts     string
	KnownCerts     string
	AcceptNew      bool
	ConnectTimeout time.Duration

	EnginePort         int
	EnginePortExplicit bool
	EngineIdle         time.Duration
	FwupdPlugins       []string
	Tunnel             bool

	BMCResetTimeout time.Duration
	BMCPoll         time.Duration

	// SMBRequireEncryption refuses a Windows node whose SMB session is
	// not encrypted (SMB 2.x): --smb-encrypt.
	SMBRequireEncryption bool
	// SMBMinDialect is the oldest SMB dialect accepted (SMB 2.1 when 0;
	// never SMB1): lowered only for a test stand-in.
	SMBMinDialect smb.Dialect
}

func (r *Reach) secret(f func(target.Target) Secret, t target.Target) Secret {
	if f == nil {
		return nil
	}
	return f(t)
}

// Nodes turns targets into the run's nodes: a Linux node reached over SSH,
// its engine placed and started by the manager; a Windows node over SMB,
// its engine run as a temporary service; a BMC over Redfish, its
// certificate pinned. The addresses of one server come together, its BMC
// first (ServerOrder).
func (r *Reach) Nodes(ts []target.Target) []Node {
	pins := tlspin.Open(r.KnownCerts, r.AcceptNew)
	var out []Node
	for _, t := range ServerOrder(ts) {
		n := Node{Name: t.String(), Server: t.Server}
		switch t.Kind {
		case target.KindBMC:
			n.Opener = &BMCNode{
				Endpoint:     "https://" + t.Addr(),
				User:         t.User,
				Password:     r.secret(r.BMCPassword, t),
				TLS:          pins.Config(t.Addr()),
				ResetTimeout: r.BMCResetTimeout,
				Poll:         r.BMCPoll,
			}
		case target.KindWindows:
			domain, user := t.Account()
			n.Opener = &WindowsNode{
				Addr:               t.Addr(),
				Domain:             domain,
				User:               user,
				Password:           r.secret(r.Password, t),
				RequireEncryption:  r.SMBRequireEncryption,
				MinDialect:         r.SMBMinDialect,
				ConnectTimeout:     r.ConnectTimeout,
				EnginePort:         r.EnginePort,
				EnginePortExplicit: r.EnginePortExplicit,
				IdleTimeout:        r.EngineIdle,
				PushPayloads:       r.Tunnel,
			}
		default:
			password := r.secret(r.Password, t)
			n.Opener = &POSIXNode{
				Dial: func(ctx context.Context) (transport.Conn, error) {
					c, err := sshtr.Dial(ctx, t.Addr(), sshtr.Options{
						User:              t.User,
						Password:          password,
						Signers:           r.Signers,
						UseAgent:          r.UseAgent,
						KnownHostsFile:    r.KnownHosts,
						AcceptNewHostKeys: r.AcceptNew,
						Timeout:           r.ConnectTimeout,
					})
					if err != nil {
						return nil, err // never a typed nil as a Conn
					}
					return c, nil
				},
				SudoPassword:       r.secret(r.SudoPassword, t),
				EnginePort:         r.EnginePort,
				EnginePortExplicit: r.EnginePortExplicit,
				IdleTimeout:        r.EngineIdle,
				FwupdPlugins:       r.FwupdPlugins,
				Tunnel:             r.Tunnel,
			}
		}
		out = append(out, n)
	}
	return out
}

// ServerOrder returns ts with the addresses of each server together, at
// the place of its first, in HP SUM's order of associated nodes: the BMC
// before the host.
func ServerOrder(ts []target.Target) []target.Target {
	rank := func(k target.Kind) int {
		if k == target.KindBMC {
			return 0
		}
		return 1
	}
	var out []target.Target
	done := map[string]bool{}
	for _, t := range ts {
		if t.Server == "" {
			out = append(out, t)
			continue
		}
		if done[t.Server] {
			continue
		}
		done[t.Server] = true
		var group []target.Target
		for _, u := range ts {
			if u.Server == t.Server {
				group = append(group, u)
			}
		}
		slices.SortStableFunc(group, func(a, b target.Target) int { return rank(a.Kind) - rank(b.Kind) })
		out = append(out, group...)
	}
	return out
}
