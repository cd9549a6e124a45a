package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fleetup/fleetup"
)

// DepotFetcher pulls payloads from the manager's web server by content hash,
// authenticating with the engine's run certificate. A transfer that breaks
// off is resumed with a range request, up to three times.
type DepotFetcher struct {
	BaseURL string
	Client  *http.Client
}

// NewDepotFetcher returns a fetcher for the depot at baseURL using tlsConf
// (the engine's certificate, the run's CA as the only root).
func NewDepotFetcher(baseURL string, tlsConf *tls.Config) *DepotFetcher {
	tr := &http.Transport{
		TLSClientConfig:       tlsConf,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	return &DepotFetcher{BaseURL: baseURL, Client: &http.Client{Transport: tr}}
}

// Fetch implements Fetcher.
func (d *DepotFetcher) Fetch(ctx context.Context, c *fleetup.Component, w io.Writer, progress func(int64)) error {
	var got int64
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		n, err := d.get(ctx, c, got, w, progress)
		got += n
		if err == nil {
			return nil
		}
		lastErr = err
		var perm *permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("from %s after %d bytes: %w", d.BaseURL, got, lastErr)
}

type permanentError struct{ error }

func (d *DepotFetcher) get(ctx context.Context, c *fleetup.Component, from int64, w io.Writer, progress func(int64)) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.BaseURL+"/v1/blobs/"+c.SHA256, nil)
	if err != nil {
		return 0, &permanentError{err}
	}
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
		req.Header.Set("If-Range", `"`+c.SHA256+`"`)
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case from > 0 && resp.StatusCode == http.StatusPartialContent:
	case from == 0 && resp.StatusCode == http.StatusOK:
	case from > 0 && resp.StatusCode == http.StatusOK:
		return 0, &permanentError{fmt.Errorf("depot ignored the resume request")}
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, &permanentError{fmt.Errorf("depot answered %s: %s", resp.Status, body)}
	}
	n, err := io.Copy(w, &ctxReader{ctx: ctx, r: resp.Body, n: from, progress: progress})
	return n, err
}

// PushedFetcher reads a payload that the manager pushed into Dir, named by
// its SHA-256 (Dir/<sha256>), when there is one (the node cannot reach the
// manager's depot), and otherwise asks Next. The Service checks what it
// returns exactly as it checks a download (size and SHA-256): a pushed
// file that differs is refused, not replaced by a download.
type PushedFetcher struct {
	Dir string
	// Next fetches what was not pushed; nil when there is no depot.
	Next Fetcher
}

var _ Fetcher = (*PushedFetcher)(nil)

// Fetch implements Fetcher.
func (p *PushedFetcher) Fetch(ctx context.Context, c *fleetup.Component, w io.Writer, progress func(int64)) error {
	if p.Dir != "" && validSHA256(c.SHA256) {
		path := filepath.Join(p.Dir, c.SHA256)
		f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow|oNonblock, 0)
		switch {
		case err == nil:
			defer f.Close()
			if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("pushed payload %s is not a regular file", path)
			}
			if _, err := io.Copy(w, &ctxReader{ctx: ctx, r: f, progress: progress}); err != nil {
				return fmt.Errorf("pushed payload %s: %w", path, err)
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("pushed payload: %w", err)
		}
	}
	if p.Next == nil {
		return fmt.Errorf("payload %s was not pushed to %s and the engine has no depot to fetch it from", c.File, p.Dir)
	}
	return p.Next.Fetch(ctx, c, w, progress)
}

// validSHA256 reports whether s is 64 lowercase hex digits (a name that
// cannot leave its directory).
func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
