package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/fleetup/fleetup"
)

// Client is the manager's side of the engine API.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the engine at addr (host:port). dial, when
// non-nil, replaces the network dialer (to reach the engine through an SSH
// tunnel).
func NewClient(addr string, tlsConf *tls.Config, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Client {
	tr := &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 4}
	if dial != nil {
		tr.DialContext = dial
	} else {
		tr.DialContext = (&net.Dialer{}).DialContext
	}
	return &Client{base: "https://" + addr, hc: &http.Client{Transport: tr}}
}

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Ping checks the engine answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v1/ping", nil, nil)
}

// Inventory asks the engine to inventory its node.
func (c *Client) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	var inv fleetup.Inventory
	if err := c.do(ctx, http.MethodGet, "/v1/inventory", nil, &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Probe asks which components apply and what is installed.
func (c *Client) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	var out []fleetup.Probe
	if err := c.do(ctx, http.MethodPost, "/v1/probe", ProbeRequest{Components: comps}, &out); err != nil {
		return nil, err
	}
	if len(out) != len(comps) {
		return nil, fmt.Errorf("engine answered %d probes for %d components", len(out), len(comps))
	}
	return out, nil
}

// Cancel asks the engine to finish the component it installs and skip the rest.
func (c *Client) Cancel(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/cancel", nil, nil)
}

// Install runs the install, passing each event to emit, and returns the
// results. A stream that ends without results is an error: the node's state
// is then unknown.
func (c *Client) Install(ctx context.Context, req InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/install", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("engine: install: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return ReadInstallStream(resp.Body, emit)
}

// MaxInstallLine bounds one line of the install stream.
const MaxInstallLine = 16 << 20

// ReadInstallStream reads the install response stream (InstallLine per
// line), passing each event to emit, and returns the results. A stream
// that ends without results, a line that is not an InstallLine, or one
// longer than MaxInstallLine is an error: the node's state is then
// unknown. Events from the node are passed on with their text bounded.
func ReadInstallStream(r io.Reader, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxInstallLine)
	for sc.Scan() {
		var l InstallLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("engine: install stream: %w", err)
		}
		if l.Event != nil && emit != nil {
			ev := *l.Event
			if len(ev.Message) > 4096 {
				ev.Message = ev.Message[:4096] + "…"
			}
			emit(ev)
		}
		if l.Error != "" {
			return nil, errors.New("engine: " + l.Error)
		}
		if l.Done {
			if l.Results == nil {
				return nil, errors.New("engine: install stream: done without results")
			}
			return l.Results, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("engine: install stream broke off: %w", err)
	}
	return nil, errors.New("engine: install stream ended without results")
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("engine: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("engine: %s: %w", path, err)
	}
	return nil
}
