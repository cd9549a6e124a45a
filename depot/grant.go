package depot

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// A grant is a URL for a node without a client certificate or token of
// the run (a BMC pulling its firmware with Redfish SimpleUpdate): whoever
// knows the URL gets that one payload, on either port, until the grant is
// revoked. The URL is random (128 bits) and ends with the payload's file
// name, since some BMCs look at the extension.
type grant struct {
	node   string
	sum    string
	name   string
	served int64 // bytes sent through the grant
}

// GrantPrefix starts the path of every grant URL.
const GrantPrefix = "/v1/grants/"

// Grant lets the holder of the returned path fetch the payload registered
// under sha256 as name, until RevokeGrants(node). The path is relative to
// either port ("/v1/grants/TOKEN/NAME"); what is fetched through it counts
// as node's in Stats.
func (d *Depot) Grant(node, sha256, name string) (string, error) {
	sum := strings.ToLower(sha256)
	if name == "" || strings.ContainsAny(name, "/\\?#%") || strings.ContainsFunc(name, func(r rune) bool { return r <= 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("depot: grant for %s: bad file name %q", node, name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.blobs[sum]; !ok {
		return "", fmt.Errorf("depot: grant for %s: no payload with sha256 %s", node, sha256)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("depot: grant for %s: %w", node, err)
	}
	token := hex.EncodeToString(b[:])
	if d.grants == nil {
		d.grants = map[string]*grant{}
	}
	d.grants[token] = &grant{node: node, sum: sum, name: name}
	return GrantPrefix + token + "/" + url.PathEscape(name), nil
}

// GrantServed is how many bytes were sent through the grant of path
// (as Grant returned it) so far; 0 for a path that is no grant (or no
// longer one).
func (d *Depot) GrantServed(path string) int64 {
	token, _, _ := strings.Cut(strings.TrimPrefix(path, GrantPrefix), "/")
	d.mu.Lock()
	defer d.mu.Unlock()
	if g := d.grants[token]; g != nil {
		return g.served
	}
	return 0
}

// RevokeGrants withdraws every grant made for node: its URLs answer 404
// from then on.
func (d *Depot) RevokeGrants(node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for t, g := range d.grants {
		if g.node == node {
			delete(d.grants, t)
		}
	}
}

// serveGrant answers GET|HEAD /v1/grants/{token}/{name}, which needs no
// authentication but the URL.
func (d *Depot) serveGrant(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, GrantPrefix), "/")
	d.mu.Lock()
	g, ok := d.grants[token]
	d.mu.Unlock()
	if !ok || name != g.name {
		// The token is the grant's only secret: a live one asked for under
		// another name must not reach the log.
		d.log.Info("depot: unknown or revoked grant", "remote", r.RemoteAddr, "path", GrantPrefix+"…/"+name)
		http.Error(w, "no such file", http.StatusNotFound)
		return
	}
	d.log.Info("depot: grant fetched", "node", g.node, "remote", r.RemoteAddr, "name", g.name, "range", r.Header.Get("Range"))
	n := d.sendBlob(w, r, g.node, g.sum)
	d.mu.Lock()
	g.served += n
	d.mu.Unlock()
}
