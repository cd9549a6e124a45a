package bmcsim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// pullRequest is a SimpleUpdate request.
type pullRequest struct {
	imageURI   string   // as given
	url        *url.URL // what is fetched
	protocol   string   // TransferProtocol as given
	user, pass string
	targets    []string
	applyTime  string
}

// parseSimpleUpdate parses a SimpleUpdate action's body.
func (p *profile) parseSimpleUpdate(data []byte) (pullRequest, *reqError) {
	const action = "UpdateService.SimpleUpdate"
	bad := func(m message) (pullRequest, *reqError) { return pullRequest{}, &reqError{http.StatusBadRequest, m} }
	m, err := parseJSONObject(data)
	if err != nil {
		return bad(p.baseMsg("MalformedJSON"))
	}
	var req pullRequest
	var ok bool
	for _, f := range []struct {
		key string
		dst *string
	}{{"ImageURI", &req.imageURI}, {"TransferProtocol", &req.protocol}, {"Username", &req.user},
		{"Password", &req.pass}, {"@Redfish.OperationApplyTime", &req.applyTime}} {
		var present bool
		*f.dst, present, err = stringField(m, f.key)
		if err != nil {
			return bad(p.baseMsg("ActionParameterValueTypeError", string(m[f.key]), f.key, action))
		}
		if f.key == "ImageURI" {
			ok = present
		}
	}
	if raw, present := m["Targets"]; present {
		if err := json.Unmarshal(raw, &req.targets); err != nil {
			return bad(p.baseMsg("ActionParameterValueTypeError", string(raw), "Targets", action))
		}
	}
	if !ok || req.imageURI == "" {
		return bad(p.baseMsg("ActionParameterMissing", action, "ImageURI"))
	}
	if req.protocol != "" && !slices.Contains(p.protocols, req.protocol) {
		return bad(p.baseMsg("ActionParameterNotSupported", "TransferProtocol "+req.protocol, action))
	}
	if req.applyTime != "" && req.applyTime != "Immediate" && req.applyTime != "OnReset" {
		return bad(p.baseMsg("ActionParameterValueFormatError", req.applyTime, "@Redfish.OperationApplyTime", action))
	}
	raw := req.imageURI
	if !strings.Contains(raw, "://") {
		proto := req.protocol
		if proto == "" {
			proto = "HTTP"
		}
		raw = strings.ToLower(proto) + "://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if p.flavor == ILO {
			return bad(message{ID: p.oem + ".SimpleUpdateInvalidImageURI", Args: []string{req.imageURI, action},
				Text: fmt.Sprintf("The firmware Image Url %s posted in %s is not valid.", req.imageURI, action), Severity: "Warning"})
		}
		return bad(p.baseMsg("ActionParameterValueFormatError", req.imageURI, "ImageURI", action))
	}
	req.url = u
	return req, nil
}

// redactedBody is a request's JSON with its password blanked, for a task's
// Payload.
func redactedBody(data []byte) string {
	m, err := parseJSONObject(data)
	if err != nil {
		return ""
	}
	if _, ok := m["Password"]; ok {
		m["Password"] = json.RawMessage(`null`)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	return string(out)
}

// simpleUpdate takes a SimpleUpdate: the BMC answers (iLO: 200 and a
// success message, no task; iDRAC: 202 and the task's Location), then
// pulls the image itself.
func (b *BMC) simpleUpdate(w http.ResponseWriter, r *http.Request) {
	p := b.prof
	data, err := readAllLimited(r.Body, maxJSONBody)
	if err != nil {
		b.writeError(w, http.StatusBadRequest, p.baseMsg("MalformedJSON"))
		return
	}
	req, rerr := p.parseSimpleUpdate(data)
	if rerr == nil {
		b.mu.Lock()
		rerr = b.checkTargetsLocked(req.targets, "Targets")
		b.mu.Unlock()
	}
	if rerr != nil {
		b.writeError(w, rerr.status, rerr.msg)
		return
	}
	j, rerr := b.beginUpdate("SimpleUpdate")
	if rerr != nil {
		b.writeError(w, rerr.status, rerr.msg)
		return
	}
	b.mu.Lock()
	j.flash.ImageURI, j.flash.Protocol = req.imageURI, req.protocol
	j.uri, j.body, j.targets = p.id(simplePath), redactedBody(data), req.targets
	if req.applyTime != "" {
		j.applyTime = req.applyTime
	}
	b.publishLocked(j)
	id := j.id
	b.mu.Unlock()
	if !b.spawn(func() { b.runPull(j, req) }) {
		b.fail(j, &updateError{failClosed, "the BMC shut down"})
		b.writeError(w, http.StatusServiceUnavailable, p.baseMsg("ServiceTemporarilyUnavailable", "30"))
		return
	}
	switch p.flavor {
	case ILO:
		writeJSON(w, http.StatusOK, p.errorBody(p.baseMsg("Success")))
	default:
		w.Header().Set("Location", tasksPath+"/"+id)
		w.WriteHeader(http.StatusAccepted)
	}
}

// runPull fetches a SimpleUpdate's image and installs it.
func (b *BMC) runPull(j *job, req pullRequest) {
	b.mu.Lock()
	j.dell = "Downloading"
	b.mu.Unlock()
	uri := req.url.String()
	hreq, err := http.NewRequestWithContext(b.ctx, http.MethodGet, uri, nil)
	if err != nil {
		b.fail(j, &updateError{failTransfer, fmt.Sprintf("cannot download %s: %v", uri, err)})
		return
	}
	if req.user != "" {
		hreq.SetBasicAuth(req.user, req.pass)
	}
	hreq.Header.Set("User-Agent", "bmcsim-"+string(b.opts.Flavor))
	resp, err := b.fetchClient().Do(hreq)
	if err != nil {
		if b.ctx.Err() != nil {
			b.fail(j, &updateError{failClosed, "the BMC shut down during the download"})
			return
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		b.fail(j, &updateError{failTransfer, fmt.Sprintf("cannot download %s: %v", uri, err)})
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.fail(j, &updateError{failTransfer, fmt.Sprintf("cannot download %s: HTTP %s", uri, resp.Status)})
		return
	}
	total := resp.ContentLength
	h, herr, n, terr := readImage(resp.Body, throttled(func(n int64) { b.progress(j, n, total) }))
	b.progress(j, n, total)
	if terr == nil && total >= 0 && n < total {
		terr = fmt.Errorf("got %d of %d bytes", n, total)
	}
	if terr != nil {
		if b.ctx.Err() != nil {
			b.fail(j, &updateError{failClosed, "the BMC shut down during the download"})
			return
		}
		b.fail(j, &updateError{failInterrupted, fmt.Sprintf("download of %s broke off after %d bytes: %v", uri, n, terr)})
		return
	}
	b.install(j, h, herr)
}

// throttled calls f with at most one call per 64 KiB of progress.
func throttled(f func(int64)) func(int64) {
	var last int64
	return func(n int64) {
		if n-last >= 64<<10 {
			last = n
			f(n)
		}
	}
}

// fetchClient is how a BMC downloads images: through Options.Dial, no
// proxy, and, like real BMCs by default, without verifying the image
// server's certificate.
func (b *BMC) fetchClient() *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, b.opts.ConnectTimeout)
		defer cancel()
		return b.opts.Dial(ctx, network, addr)
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // BMCs do not verify image servers by default
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true,
	}}
}
