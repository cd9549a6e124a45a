package redfish

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxRef bounds the length of a reference the BMC gives.
const maxRef = 2048

// errNoRef is a reference that is missing.
var errNoRef = errors.New("no URI given")

// resolve turns a reference the BMC gave (a Location header, an @odata.id,
// an action target), relative to the path base, into a path (with its
// query) on the BMC's endpoint. A reference to another scheme, host or port
// fails with ErrForeignURI: it is never followed.
func (c *Client) resolve(base, ref string) (string, error) {
	return resolveRef(c.base, base, ref)
}

// resolver is resolve with base fixed, for the parsers.
func (c *Client) resolver(base string) func(string) (string, error) {
	return func(ref string) (string, error) { return c.resolve(base, ref) }
}

// resolveRef is resolve for the endpoint ep (scheme and host only).
func resolveRef(ep *url.URL, base, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", errNoRef
	}
	if len(ref) > maxRef {
		return "", fmt.Errorf("URI of %d bytes refused", len(ref))
	}
	if i := strings.IndexFunc(ref, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return "", fmt.Errorf("URI %q: control character refused", ref)
	}
	b, err := url.Parse(base)
	if err != nil || b.IsAbs() || b.Host != "" {
		b = &url.URL{Path: serviceRoot}
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("URI %q: %w", ref, err)
	}
	r := ep.ResolveReference(b).ResolveReference(u)
	if !originOf(ep).match(r) {
		return "", fmt.Errorf("%q: %w", ref, ErrForeignURI)
	}
	p := r.EscapedPath()
	if p == "" {
		p = "/"
	}
	if r.RawQuery != "" {
		p += "?" + r.RawQuery
	}
	return p, nil
}

// jobID is the id a task or job URI ends with ("JID_123" for
// /redfish/v1/TaskService/Tasks/JID_123, "5" for .../Tasks/5/Monitor), or
// "" when it does not end with a plausible id. The id is later put in
// candidate URIs, so it is a single safe path element.
func jobID(uri string) string {
	p := uri
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	segs := strings.Split(strings.TrimRight(p, "/"), "/")
	seg := segs[len(segs)-1]
	if strings.EqualFold(seg, "Monitor") && len(segs) > 1 {
		seg = segs[len(segs)-2]
	}
	id, err := url.PathUnescape(seg)
	if err != nil || id == "" || id == "." || id == ".." || len(id) > 128 {
		return ""
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.:", r)) {
			return ""
		}
	}
	return id
}
