package redfish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultPoll           = 2 * time.Second
	DefaultMaxBackoff     = 5 * time.Second
	DefaultGrace          = 60 * time.Second
	DefaultMaxBody        = 4 << 20
	// DefaultResetTimeout is the outage Wait and WaitService bear when
	// given none: BMCs take 90 to 200 seconds to come back from a reset.
	DefaultResetTimeout = 5 * time.Minute
)

// Config says how to reach and log in to one BMC.
type Config struct {
	// Endpoint is the Redfish service, "https://host[:port]" (an IPv6
	// host in brackets). Only https is accepted, with no path, user
	// information or query.
	Endpoint string
	User     string
	// Password is copied by Connect: the caller may zero its slice once
	// Connect returns. The copy is kept to log in again after a BMC reset
	// and zeroed by Close.
	Password []byte
	// TLS is the caller's TLS configuration (typically pinning:
	// InsecureSkipVerify with its own VerifyConnection). It is required
	// and used as given: the client works on a clone, only filling
	// ServerName from the endpoint when it is empty. A handshake it
	// refuses fails with a *TLSError that unwraps to the caller's error.
	TLS *tls.Config
	// Dial opens the TCP connections to the BMC; a net.Dialer when nil.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RequestTimeout bounds each request (DefaultRequestTimeout when
	// zero), whatever the caller's context says. An upload is bounded by
	// its progress instead: it fails when no byte was sent, or no answer
	// came after the last one, for RequestTimeout.
	RequestTimeout time.Duration
	// Poll is the interval between two looks at a running update
	// (DefaultPoll when zero).
	Poll time.Duration
	// MaxBackoff is the longest pause between two looks at a BMC that is
	// not answering (DefaultMaxBackoff when zero); the pauses start at
	// Poll and double.
	MaxBackoff time.Duration
	// Grace is how long Wait bears with a BMC that answers but says
	// nothing about the update: an HPE iLO still Idle (or still showing
	// the previous update's result) after the update was accepted, or a
	// task that answers with something that is not a JSON object. After
	// Grace, Wait returns ErrOutcomeUnknown (or an error for the junk).
	// A task that no URI knows any more is borne for ten polls, at most
	// Grace. DefaultGrace when zero.
	Grace time.Duration
	// MaxBody bounds every response body read from the BMC
	// (DefaultMaxBody, 4 MiB, when zero).
	MaxBody int64
	// Logger receives debug and info records (outages, logins, moved
	// jobs); never a password or token. Silent when nil.
	Logger *slog.Logger
}

// withDefaults returns cfg with its zero values replaced by the defaults.
func (cfg Config) withDefaults() Config {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.Poll {
		cfg.MaxBackoff = cfg.Poll
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate checks cfg and returns the endpoint, parsed.
func (cfg *Config) validate() (*url.URL, error) {
	if cfg.TLS == nil {
		return nil, errors.New("redfish: Config.TLS is required (the BMC's certificate must be verified or pinned)")
	}
	if cfg.User == "" {
		return nil, errors.New("redfish: Config.User is empty")
	}
	return parseEndpoint(cfg.Endpoint)
}

// parseEndpoint checks that s is "https://host[:port]" and returns it
// parsed, with an empty path.
func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("redfish: endpoint %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("redfish: endpoint %q: the scheme must be https", s)
	case u.Hostname() == "":
		return nil, fmt.Errorf("redfish: endpoint %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("redfish: endpoint %q: user information does not belong in the endpoint", s)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return nil, fmt.Errorf("redfish: endpoint %q: give only https://host[:port]", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("redfish: endpoint %q: bad port", s)
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}
