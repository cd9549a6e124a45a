package redfish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// origin is the BMC's endpoint as compared with the URLs of requests,
// redirects and references: scheme, lower-case host and explicit port.
type origin struct {
	scheme string
	host   string // lower case, no brackets
	port   string // explicit, "443" for https without one
}

func originOf(u *url.URL) origin {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: port}
}

// match reports whether u is on the origin.
func (o origin) match(u *url.URL) bool {
	return u != nil && u.User == nil && originOf(u) == o
}

// noDeadlineKey marks a request context whose deadline the caller manages
// (uploads, bounded by their progress): the guard adds none.
type noDeadlineKey struct{}

// guard is the RoundTripper of every request to the BMC. It refuses a
// request for another origin (so neither a redirect nor a forged reference
// can carry the session token elsewhere), gives the request a deadline of
// its own, and bounds the response body.
type guard struct {
	base    http.RoundTripper
	origin  origin
	timeout time.Duration
	maxBody int64
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if !g.origin.match(req.URL) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refused request to %s://%s: %w", req.URL.Scheme, req.URL.Host, ErrForeignURI)
	}
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if ctx.Value(noDeadlineKey{}) == nil {
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		req = req.WithContext(ctx)
	}
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &boundedBody{rc: resp.Body, left: g.maxBody, ctx: ctx, cancel: cancel}
	return resp, nil
}

// boundedBody fails with ErrResponseTooLarge once more than its limit has
// been read, and ends the request's deadline when closed. A body that ends
// after the request's context ended fails with the context's error: over
// TLS, net/http (Go 1.26) can end a chunked body cut off by a cancel with a
// clean io.EOF, which would pass a truncated document for a whole one.
type boundedBody struct {
	rc     io.ReadCloser
	left   int64
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.read(p)
	if errors.Is(err, io.EOF) && b.ctx.Err() != nil {
		return n, b.ctx.Err()
	}
	return n, err
}

func (b *boundedBody) read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		for {
			n, err := b.rc.Read(one[:])
			if n > 0 {
				return 0, ErrResponseTooLarge
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.cancel)
	return err
}

// newHTTPClient returns the HTTP client of c: TLS on the caller's
// configuration, dialled through c.dialTLS, no proxy, HTTP/1.1, bounded
// headers and bodies, redirects only within the origin.
func (c *Client) newHTTPClient() *http.Client {
	c.tr = &http.Transport{
		Proxy:       nil, // a BMC is reached directly, never through the environment's proxy
		DialContext: refusePlain,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.dialTLS(ctx, network, addr)
		},
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{}, // no HTTP/2
		MaxIdleConns:           4,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        30 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
	}
	return &http.Client{
		Transport: &guard{base: c.tr, origin: c.origin, timeout: c.cfg.RequestTimeout, maxBody: c.cfg.MaxBody},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if !c.origin.match(req.URL) {
				return fmt.Errorf("refused redirect to %s://%s: %w", req.URL.Scheme, req.URL.Host, ErrForeignURI)
			}
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

func refusePlain(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("plain HTTP to a BMC is refused")
}

// netError is a failure to reach the BMC at the TCP level, or a TLS
// handshake broken by the network (reset, timeout, closed): not a refusal
// of the certificate.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// dialTLS dials the BMC, remembers the local address of the connection,
// and runs the TLS handshake on a clone of the caller's configuration.
func (c *Client) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	raw, err := c.dial(ctx, network, addr)
	if err != nil {
		return nil, &netError{err}
	}
	if ap, err := netip.ParseAddrPort(raw.LocalAddr().String()); err == nil {
		c.setLocal(ap.Addr().Unmap())
	}
	conn := tls.Client(raw, c.tlsConf)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		if brokenByNetwork(err) {
			return nil, &netError{fmt.Errorf("tls handshake: %w", err)}
		}
		return nil, &TLSError{Endpoint: c.endpoint, Err: err}
	}
	return conn, nil
}

// brokenByNetwork reports whether a handshake error comes from the
// connection rather than from TLS itself.
func brokenByNetwork(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.cfg.Dial != nil {
		return c.cfg.Dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// classify turns the error of an HTTP exchange into this package's error:
// ctx's own error when ctx ended, a *TLSError as is, ErrForeignURI and
// ErrResponseTooLarge wrapped with the request, anything else that broke
// the exchange as an *UnreachableError.
func (c *Client) classify(ctx context.Context, method, uri string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var te *TLSError
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, ErrForeignURI) || errors.Is(err, ErrResponseTooLarge) || errors.Is(err, ErrSizeMismatch) {
		return fmt.Errorf("redfish at %s: %s %s: %w", c.endpoint, method, uri, err)
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return ue
	}
	var u *url.Error
	if errors.As(err, &u) {
		err = u.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%s %s: no answer within %s", method, uri, c.cfg.RequestTimeout)
	} else {
		err = fmt.Errorf("%s %s: %w", method, uri, err)
	}
	return &UnreachableError{Endpoint: c.endpoint, Err: err}
}
