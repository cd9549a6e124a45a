// Package bmc is the agent of a BMC node (HPE iLO, Dell iDRAC, OpenBMC):
// it keeps the Agent contract over Redfish (package redfish), with no
// engine placed on the node. Inventory is the BMC's Manager, its
// FirmwareInventory and the System it manages; the components it takes
// are BMC images (fleetup.KindBMC), matched to FirmwareInventory members
// or to the Manager's model by the manifest's targets.
//
// An image goes to the BMC the way BMCs take it:
//
//   - pulled (preferred): SimpleUpdate with an ImageURI on the manager's
//     own web server, a URL granted to this node and this image alone
//     (depot.Grant), over HTTPS or HTTP as the BMC's allowable transfer
//     protocols say, and revoked when the node is done;
//   - pushed, when the BMC has no SimpleUpdate, or when its pull did not
//     fetch the whole image (its way back to the manager is blocked):
//     MultipartHttpPushUri, else HttpPushUri, streamed from the manager's
//     copy after its SHA-256 was checked again.
//
// Progress is the BMC's task (or HPE's UpdateService state), followed
// through the BMC's reset; done is the version read back from the BMC,
// equal to the image's, within the reset timeout. A cancel lets the flash
// in progress finish (nothing can safely interrupt one) and skips the
// rest. Close deletes the Redfish session and revokes the node's grants.
package bmc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/redfish"
	"github.com/fleetup/fleetup/wire"
)

// DefaultResetTimeout is how long a BMC may take to come back after a
// flash (--bmc-reset-timeout).
const DefaultResetTimeout = 20 * time.Minute

// Options configure a BMC agent.
type Options struct {
	// Node is the node as the user named it.
	Node string
	// Endpoint is the BMC's Redfish service, "https://host:port".
	Endpoint string
	User     string
	// Password returns the BMC's password; the agent zeroes what it got
	// once the session is made (and keeps a copy only to log in again
	// after the BMC's reset, zeroed at Close).
	Password func() ([]byte, error)
	// TLS verifies the BMC's certificate (pinned: tlspin).
	TLS *tls.Config
	// Dial makes the connections to the BMC (net.Dialer when nil).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ResetTimeout bounds the wait for the BMC after a flash
	// (DefaultResetTimeout when 0); Poll is how often progress is read
	// (the client's default when 0); RequestTimeout bounds each request.
	ResetTimeout   time.Duration
	Poll           time.Duration
	RequestTimeout time.Duration
	// Depot is the manager's web server, from which the BMC pulls.
	Depot Depot
	// Notice tells the user something about the node.
	Notice func(msg string)
}

// Depot is what the agent needs of the manager's web server.
type Depot interface {
	// Grant returns the path of a URL that serves the payload of c to
	// whoever knows it, until RevokeGrants.
	Grant(c *fleetup.Component) (string, error)
	// Served is how many bytes of path were served so far.
	Served(path string) int64
	RevokeGrants()
	// HTTPSPort and HTTPPort are the manager's ports (0: not listening).
	HTTPSPort() int
	HTTPPort() int
}

// Agent is a BMC node's agent.
type Agent struct {
	opts   Options
	client *redfish.Client

	mu        sync.Mutex
	cancelled bool
	closed    bool
	report    *wire.CleanupReport
	closeErr  error
	installMu sync.Mutex // one Install at a time
	// resets counts the BMC's outages seen (during a task, or reading
	// the version back), so that a reset already followed is not waited
	// for again.
	resets atomic.Int64
}

var _ agent.Agent = (*Agent)(nil)

// Open logs in to the BMC (its certificate checked first) and returns its
// agent. Nothing is placed on the BMC but the session, which Close deletes.
func Open(ctx context.Context, opts Options) (*Agent, error) {
	if opts.ResetTimeout <= 0 {
		opts.ResetTimeout = DefaultResetTimeout
	}
	if opts.Notice == nil {
		opts.Notice = func(string) {}
	}
	if opts.Password == nil {
		return nil, fmt.Errorf("bmc %s: no password for %s", opts.Endpoint, opts.User)
	}
	pw, err := opts.Password()
	if err != nil {
		return nil, fmt.Errorf("bmc %s: password: %w", opts.Endpoint, err)
	}
	c, err := redfish.Connect(ctx, redfish.Config{
		Endpoint:       opts.Endpoint,
		User:           opts.User,
		Password:       pw,
		TLS:            opts.TLS,
		Dial:           opts.Dial,
		RequestTimeout: opts.RequestTimeout,
		Poll:           opts.Poll,
	})
	clear(pw)
	if err != nil {
		return nil, err
	}
	return &Agent{opts: opts, client: c}, nil
}

// Name implements agent.Agent.
func (a *Agent) Name() string { return a.opts.Node }

func (a *Agent) check(ctx context.Context) error {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return agent.ErrClosed
	}
	return ctx.Err()
}

// Inventory implements agent.Agent: the BMC's Manager, FirmwareInventory
// and System.
func (a *Agent) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	bi, err := a.client.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	return inventoryOf(bi), nil
}

func inventoryOf(bi *fleetup.BMCInventory) *fleetup.Inventory {
	inv := &fleetup.Inventory{BMC: bi, OS: "bmc", OSName: bi.Manager.Model, OSVersion: bi.Manager.FirmwareVersion}
	if bi.Vendor != "" {
		inv.OSName = strings.TrimSpace(bi.Vendor + " " + bi.Manager.Model)
	}
	return inv
}

// Probe implements agent.Agent: a BMC image applies when one of its
// targets names a FirmwareInventory member (by name, id or SoftwareId) or
// the Manager's model; the installed version is that member's (or the
// Manager's firmware version).
func (a *Agent) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	bi, err := a.client.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]fleetup.Probe, len(comps))
	for i := range comps {
		out[i] = probe(&comps[i], bi)
	}
	return out, nil
}

// match is what of a BMC an image's targets name.
type match struct {
	fw      *fleetup.Firmware // nil: the Manager
	raw     string            // the version as the BMC says it
	version string            // the version to compare
	what    string
}

// findTarget is the part of bi that c's targets name, or why a member it
// names may not take it.
//
// An iDRAC lists the image it keeps for a rollback beside the running one,
// with the same Name and SoftwareId ("Previous-25227-6.10.30.00__iDRAC..."
// beside "Installed-25227-7.00.00.00__iDRAC..."): such a member is matched
// by its id only, never by name or SoftwareId, or the rollback image's
// version would pass for the installed one.
func findTarget(c *fleetup.Component, bi *fleetup.BMCInventory) (*match, string) {
	for _, t := range c.Targets {
		for i := range bi.Firmware {
			fw := &bi.Firmware[i]
			previous := len(fw.ID) >= len("Previous-") && strings.EqualFold(fw.ID[:len("Previous-")], "Previous-")
			if strings.EqualFold(t, fw.ID) || !previous && (strings.EqualFold(t, fw.Name) || fw.SoftwareID != "" && strings.EqualFold(t, fw.SoftwareID)) {
				if !fw.Updateable {
					return nil, fmt.Sprintf("FirmwareInventory member %s (%s) is not updateable", fw.ID, fw.Name)
				}
				return &match{fw: fw, raw: fw.Version, version: VersionOf(fw.Version, fw.Name), what: fmt.Sprintf("FirmwareInventory %s (%s)", fw.ID, fw.Name)}, ""
			}
		}
		if bi.Manager.Model != "" && strings.EqualFold(t, bi.Manager.Model) {
			return &match{raw: bi.Manager.FirmwareVersion, version: VersionOf(bi.Manager.FirmwareVersion, bi.Manager.Model), what: "the BMC (" + bi.Manager.Model + ")"}, ""
		}
	}
	return nil, ""
}

func probe(c *fleetup.Component, bi *fleetup.BMCInventory) fleetup.Probe {
	p := fleetup.Probe{ComponentID: c.ID}
	if c.Kind != fleetup.KindBMC {
		p.Reason = fmt.Sprintf("a %s component: for the server's OS, not its BMC", c.Kind)
		return p
	}
	m, refusal := findTarget(c, bi)
	if m == nil {
		if refusal != "" {
			p.Reason = refusal
		} else {
			p.Reason = fmt.Sprintf("none of its targets %q is a FirmwareInventory member or the BMC's model (%s)", c.Targets, bi.Manager.Model)
		}
		return p
	}
	p.Applicable = true
	p.Installed = m.version
	p.Reason = m.what
	if m.raw != m.version {
		p.Reason += fmt.Sprintf(", version %q", m.raw)
	}
	return p
}

var (
	versionRun = regexp.MustCompile(`[0-9]+(\.[0-9]+)*`)
	vVersion   = regexp.MustCompile(`(?i)(?:^|[\s(])v([0-9]+(\.[0-9]+)*)`)
)

// VersionOf is the version in what a BMC reports, which is often more
// than a version ("iLO 5 v2.72", "2.72 Sep 04 2022", "U46 v2.90
// (06/16/2023)", "2.14.0-dev-12-g3b1"): a word "vN.N..." when there is
// one; else, with the name it belongs to dropped from the front, the first
// run of dot-separated numbers. Without either, v is returned as it is.
func VersionOf(v, name string) string {
	s := strings.TrimSpace(v)
	if m := vVersion.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	if name != "" && len(s) >= len(name) && strings.EqualFold(s[:len(name)], name) {
		s = s[len(name):]
	}
	if m := versionRun.FindString(s); m != "" {
		return m
	}
	return strings.TrimSpace(v)
}

// Cancel implements agent.Agent: the flash in progress finishes, the rest
// is skipped.
func (a *Agent) Cancel(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return agent.ErrClosed
	}
	a.cancelled = true
	return nil
}

func (a *Agent) isCancelled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cancelled
}

// Install implements agent.Agent.
func (a *Agent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	a.installMu.Lock()
	defer a.installMu.Unlock()
	res := make([]fleetup.ComponentResult, len(req.Items))
	for i, it := range req.Items {
		c := it.Component
		res[i] = fleetup.ComponentResult{ComponentID: c.ID, Version: c.Version, Installed: it.Installed, Action: it.Action}
		if a.isCancelled() || ctx.Err() != nil {
			res[i].Phase = fleetup.PhaseSkipped
			res[i].Reason = "cancelled"
			emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseSkipped, Message: "cancelled before it started"})
			continue
		}
		after, err := a.flash(ctx, &c, emit)
		res[i].After = after
		if err != nil {
			res[i].Phase = fleetup.PhaseFailed
			res[i].Error = err.Error()
			emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseFailed, Message: err.Error()})
			if ctx.Err() != nil {
				// The caller gave up on the BMC: what it does now is not
				// known. The items after this one did not start.
				for j := i + 1; j < len(req.Items); j++ {
					n := req.Items[j]
					res[j] = fleetup.ComponentResult{ComponentID: n.Component.ID, Version: n.Component.Version, Installed: n.Installed, Action: n.Action,
						Phase: fleetup.PhaseSkipped, Reason: "not started: the BMC was given up on during " + c.ID}
				}
				return res, fmt.Errorf("%s: %w", c.ID, err)
			}
			continue
		}
		res[i].Phase = fleetup.PhaseInstalled
		emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstalled, Message: "the BMC reports " + after})
	}
	return res, nil
}

// flash puts one image on the BMC and returns the version read back.
func (a *Agent) flash(ctx context.Context, c *fleetup.Component, emit func(fleetup.Event)) (string, error) {
	bi, err := a.client.Inventory(ctx)
	if err != nil {
		return "", fmt.Errorf("read the BMC before the flash: %w", err)
	}
	m, refusal := findTarget(c, bi)
	if m == nil {
		if refusal == "" {
			refusal = "no target of the image is on the BMC any more"
		}
		return "", errors.New(refusal)
	}
	caps, err := a.client.Capabilities(ctx)
	if err != nil {
		return "", err
	}
	outages := a.resets.Load()
	// The BMC's messages may quote the ImageURI: its secret never goes
	// further than the BMC.
	var secret string
	hide := func(msg string) string {
		if secret == "" {
			return msg
		}
		return strings.ReplaceAll(msg, secret, "…")
	}
	progress := func(p redfish.Progress) {
		if p.Resetting {
			a.resets.Add(1)
		}
		msg := p.State
		if p.Percent >= 0 {
			msg += fmt.Sprintf(" %d%%", p.Percent)
		}
		for _, m := range p.Messages {
			msg += "; " + m
		}
		emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall, Message: hide(strings.TrimPrefix(msg, "; "))})
	}

	var job *redfish.Job
	pushed := false
	if proto, url, ok := a.pullURL(c, caps); ok {
		secret = grantToken(url)
		emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseDownload, Total: c.Size, Message: "the BMC pulls the image from " + redactGrant(url)})
		job, err = a.client.SimpleUpdate(ctx, url, proto, nil)
		if err == nil {
			emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseVerify, Message: "the BMC checks the image"})
			err = a.wait(ctx, c, job, progress, emit)
			if served := a.opts.Depot.Served(grantPath(url)); err == nil && served < c.Size {
				// The BMC said nothing of the update's end and did not
				// fetch the image: it was not flashed from it.
				err = fmt.Errorf("the BMC ended the update without fetching the image (%d of %d bytes served)", served, c.Size)
			}
		}
		if err != nil {
			served := a.opts.Depot.Served(grantPath(url))
			if served >= c.Size || ctx.Err() != nil || !canPush(caps) {
				return "", errors.New(hide(pullError(err, served, c.Size, canPush(caps)).Error()))
			}
			msg := hide(fmt.Sprintf("the BMC's pull got %d of %d bytes (%v): its way back to the manager is blocked; pushing the image instead", served, c.Size, err))
			a.opts.Notice(c.ID + ": " + msg)
			emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseDownload, Message: msg})
			job, err = nil, nil
			pushed = true
		}
	} else {
		pushed = true
	}
	if pushed {
		if !canPush(caps) {
			return "", errors.New("the BMC offers neither SimpleUpdate over HTTP(S) nor a push URI (MultipartHttpPushUri, HttpPushUri)")
		}
		if err := a.push(ctx, c, caps, progress, emit); err != nil {
			return "", err
		}
	}
	after, err := a.readBack(ctx, c, emit)
	if err != nil {
		return after, err
	}
	if a.resets.Load() == outages && a.ownFirmwareChanged(ctx, bi) {
		// The BMC's own firmware changed and the BMC has not reset yet:
		// it will, and nothing else may start before it is back.
		return a.settle(ctx, c, after, emit)
	}
	return after, nil
}

// ownFirmwareChanged reports whether the BMC's own firmware version is no
// longer what it was before the flash.
func (a *Agent) ownFirmwareChanged(ctx context.Context, before *fleetup.BMCInventory) bool {
	now, err := a.client.Inventory(ctx)
	return err != nil || now.Manager.FirmwareVersion != before.Manager.FirmwareVersion
}

// settle waits for the reset that follows a flash of the BMC's own
// firmware (BMCs show the new version first, then reset into it), for at
// most a minute, or the reset timeout when shorter; a BMC that went down
// is waited for and read back again.
func (a *Agent) settle(ctx context.Context, c *fleetup.Component, version string, emit func(fleetup.Event)) (string, error) {
	window := min(a.opts.ResetTimeout, time.Minute)
	emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall, Message: fmt.Sprintf("the BMC's own firmware changed: waiting up to %s for it to reset into it", window)})
	reset, err := a.client.WaitReset(ctx, window, a.opts.ResetTimeout)
	switch {
	case ctx.Err() != nil:
		return version, ctx.Err()
	case err == nil && !reset:
		emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall, Message: fmt.Sprintf("the BMC did not reset within %s; going on", window)})
		return version, nil
	}
	// It reset (or answered oddly): what it runs now is read back.
	a.resets.Add(1)
	emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall, Message: "the BMC reset; reading the version back"})
	return a.readBack(ctx, c, emit)
}

func canPush(caps *redfish.Capabilities) bool {
	return caps.MultipartHTTPPushURI != "" || caps.HTTPPushURI != ""
}

func pullError(err error, served, size int64, push bool) error {
	var ue *redfish.UpdateError
	switch {
	case errors.As(err, &ue), served >= size:
		return err
	case push:
		return fmt.Errorf("%w (the BMC fetched %d of %d bytes)", err, served, size)
	default:
		return fmt.Errorf("%w (the BMC fetched %d of %d bytes, and has no push URI to send it the image instead)", err, served, size)
	}
}

// pullURL is the URL the BMC pulls c from, and its protocol; false when
// the BMC cannot pull (no SimpleUpdate, no HTTP(S) among its protocols,
// no manager port for it).
func (a *Agent) pullURL(c *fleetup.Component, caps *redfish.Capabilities) (proto, url string, ok bool) {
	if !caps.SimpleUpdate || a.opts.Depot == nil {
		return "", "", false
	}
	allowed := func(p string) bool {
		if len(caps.TransferProtocols) == 0 {
			return p == "HTTPS" // not advertised: the one every BMC has
		}
		for _, q := range caps.TransferProtocols {
			if strings.EqualFold(q, p) {
				return true
			}
		}
		return false
	}
	local := a.client.LocalAddr()
	if !local.IsValid() {
		return "", "", false
	}
	for _, p := range []struct {
		proto, scheme string
		port          int
	}{{"HTTPS", "https", a.opts.Depot.HTTPSPort()}, {"HTTP", "http", a.opts.Depot.HTTPPort()}} {
		if p.port == 0 || !allowed(p.proto) {
			continue
		}
		path, err := a.opts.Depot.Grant(c)
		if err != nil {
			a.opts.Notice(c.ID + ": " + err.Error())
			return "", "", false
		}
		return p.proto, p.scheme + "://" + net.JoinHostPort(local.Unmap().String(), strconv.Itoa(p.port)) + path, true
	}
	return "", "", false
}

// grantPath is the path of a grant URL.
func grantPath(url string) string {
	if i := strings.Index(url, "://"); i >= 0 {
		if j := strings.IndexByte(url[i+3:], '/'); j >= 0 {
			return url[i+3+j:]
		}
	}
	return url
}

// grantToken is the secret part of a grant URL ("" when there is none).
func grantToken(url string) string {
	parts := strings.Split(grantPath(url), "/")
	if len(parts) >= 4 && len(parts[3]) >= 16 {
		return parts[3]
	}
	return ""
}

// redactGrant shows a grant URL without its secret.
func redactGrant(url string) string {
	p := grantPath(url)
	host := strings.TrimSuffix(url, p)
	parts := strings.Split(p, "/")
	if len(parts) >= 4 {
		parts[3] = "…"
	}
	return host + strings.Join(parts, "/")
}

// push sends c's image to the BMC from the manager's copy, checked
// against the baseline's SHA-256 first.
func (a *Agent) push(ctx context.Context, c *fleetup.Component, caps *redfish.Capabilities, progress func(redfish.Progress), emit func(fleetup.Event)) error {
	f, err := os.Open(c.Path)
	if err != nil {
		return fmt.Errorf("open the image: %w", err)
	}
	defer f.Close()
	emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseVerify, Message: "checking the image against the baseline's SHA-256"})
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read the image: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != c.Size || !strings.EqualFold(got, c.SHA256) {
		return fmt.Errorf("the image %s changed on the manager after the baseline was checked (%d bytes, sha256 %s; the baseline says %d, %s); not sent", c.File, n, got, c.Size, c.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	body := io.LimitReader(f, c.Size)
	emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseDownload, Total: c.Size, Message: "pushing the image to the BMC"})
	var job *redfish.Job
	switch {
	case caps.MultipartHTTPPushURI != "":
		job, err = a.client.PushMultipart(ctx, caps.MultipartHTTPPushURI, body, c.Size, c.File, nil)
	case caps.HPE:
		// An iLO's HttpPushUri takes its own multipart form.
		job, err = a.client.PushHPE(ctx, caps.HTTPPushURI, body, c.Size, c.File)
	default:
		job, err = a.client.PushHTTP(ctx, caps.HTTPPushURI, body, c.Size)
	}
	if err != nil {
		return fmt.Errorf("push the image: %w", err)
	}
	emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall, Message: "the BMC flashes the image"})
	return a.wait(ctx, c, job, progress, emit)
}

// wait follows job to its end. A BMC that forgot the job in its reset
// (OpenBMC's tasks do not survive one; an iLO back at Idle) has not said
// how it ended: the version read back decides.
//
// The BMC's task gets the reset timeout as a whole, not only per outage:
// a task that never ends (an iDRAC job Scheduled until the host reboots,
// a BMC stuck at some percentage) fails the image, naming the state it
// stayed in, instead of holding the node for ever.
func (a *Agent) wait(ctx context.Context, c *fleetup.Component, job *redfish.Job, progress func(redfish.Progress), emit func(fleetup.Event)) error {
	wctx, cancel := context.WithTimeout(ctx, a.opts.ResetTimeout)
	defer cancel()
	last := ""
	err := a.client.Wait(wctx, job, a.opts.ResetTimeout, func(p redfish.Progress) {
		if p.State != "" {
			last = p.State
		}
		progress(p)
	})
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		what := "the BMC's update"
		if job.ID != "" {
			what += " (job " + job.ID + ")"
		}
		if last == "" {
			return fmt.Errorf("%s did not end within %s", what, a.opts.ResetTimeout)
		}
		return fmt.Errorf("%s did not end within %s: it still says %s", what, a.opts.ResetTimeout, last)
	}
	if errors.Is(err, redfish.ErrOutcomeUnknown) {
		emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall, Message: err.Error() + "; reading the version back"})
		return nil
	}
	return err
}

// readBack waits until the BMC reports c's version for c's target, through
// a reset that may come after the update said it completed, for at most
// the reset timeout.
func (a *Agent) readBack(ctx context.Context, c *fleetup.Component, emit func(fleetup.Event)) (string, error) {
	deadline := time.Now().Add(a.opts.ResetTimeout)
	poll := a.opts.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	var last string
	var lastErr error
	said, matched := false, false
	for {
		bi, err := a.client.Inventory(ctx)
		if err == nil {
			if m, _ := findTarget(c, bi); m != nil {
				matched = true
				last = m.version
				if m.version == c.Version {
					return m.version, nil
				}
			}
		} else {
			lastErr = err
			if ctx.Err() != nil {
				return last, err
			}
			if !said {
				a.resets.Add(1)
				emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall, Message: "waiting for the BMC to come back after its reset"})
				said = true
			}
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			if werr := a.client.WaitService(ctx, left); werr != nil {
				if ctx.Err() != nil {
					return last, werr
				}
				lastErr = werr
				break
			}
			continue
		}
		if time.Now().After(deadline) {
			break
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, ctx.Err()
		case <-t.C:
		}
	}
	if last == "" && lastErr != nil {
		return "", fmt.Errorf("the BMC did not come back within %s after the update: %w", a.opts.ResetTimeout, lastErr)
	}
	if !matched {
		return "", fmt.Errorf("no FirmwareInventory member matches the image's targets %q after the update (an iDRAC's member ids carry their version: target the SoftwareId or the name)", c.Targets)
	}
	return last, fmt.Errorf("the BMC reports version %s, not %s, %s after the update (the image was taken but is not active)", last, c.Version, a.opts.ResetTimeout)
}

// Close implements agent.Agent: the node's grants are revoked and the
// Redfish session deleted.
func (a *Agent) Close(ctx context.Context) (*wire.CleanupReport, error) {
	a.mu.Lock()
	if a.closed {
		rep, err := a.report, a.closeErr
		a.mu.Unlock()
		return rep, err
	}
	a.closed = true
	a.mu.Unlock()
	if a.opts.Depot != nil {
		a.opts.Depot.RevokeGrants()
	}
	rep := &wire.CleanupReport{Node: a.opts.Node}
	err := a.client.Close(ctx)
	if err != nil {
		rep.Errors = append(rep.Errors, "redfish session: "+err.Error())
		err = fmt.Errorf("the Redfish session on %s could not be confirmed deleted (the BMC ends it at its session timeout): %w", a.opts.Endpoint, err)
	} else {
		rep.Sessions = append(rep.Sessions, "Redfish session of "+a.opts.User)
	}
	a.mu.Lock()
	a.report, a.closeErr = rep, err
	a.mu.Unlock()
	return rep, err
}

// LocalAddr is the manager's address as the BMC sees it.
func (a *Agent) LocalAddr() netip.Addr { return a.client.LocalAddr() }
