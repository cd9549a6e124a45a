package redfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Job is an update in progress, as the BMC accepted it. It holds no secret
// and can be kept (JSON) to follow the update after a restart.
type Job struct {
	// TaskURI is the task to follow (DMTF): the Task named in the body of
	// the BMC's answer, else its Location (a task monitor). Empty for
	// HPE's state machine, and for a BMC that accepted the update without
	// a task. Wait updates it when the BMC moves the job.
	TaskURI string `json:"task_uri,omitempty"`
	// ID is the last path element of the task ("JID_123"), by which a
	// job is found again after the BMC moved it.
	ID string `json:"id,omitempty"`
	// HPE is an update followed through Oem.Hpe.State of the
	// UpdateService.
	HPE     bool      `json:"hpe,omitempty"`
	Started time.Time `json:"started"`

	// hpeBefore is Oem.Hpe.State (and result) before the update was
	// posted: a Complete or Error still showing is the previous update's.
	hpeBefore hpeState
}

// SimpleUpdate asks the BMC to pull the image at imageURI (served by the
// manager: see LocalAddr) with #UpdateService.SimpleUpdate. protocol is the
// TransferProtocol ("HTTPS", "HTTP"; upper-cased; omitted when empty, the
// scheme of imageURI then says it); targets, when not empty, restricts the
// update to those resources. @Redfish.OperationApplyTime is not sent: it
// is not a SimpleUpdate parameter, and BMCs that check parameters (bmcweb)
// refuse unknown ones.
func (c *Client) SimpleUpdate(ctx context.Context, imageURI, protocol string, targets []string) (*Job, error) {
	us, err := c.currentUpdateService(ctx)
	if err != nil {
		return nil, err
	}
	if !us.caps.SimpleUpdate {
		return nil, fmt.Errorf("redfish at %s: SimpleUpdate: %w", c.endpoint, ErrNotSupported)
	}
	params := map[string]any{"ImageURI": imageURI}
	if protocol != "" {
		params["TransferProtocol"] = strings.ToUpper(protocol)
	}
	if len(targets) > 0 {
		params["Targets"] = targets
	}
	body, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	post := func() (*reply, error) {
		return c.do(ctx, request{method: http.MethodPost, uri: us.simpleUpdate, body: bytes.NewReader(body), size: int64(len(body)), ctype: "application/json"})
	}
	r, err := post()
	if err == nil && r.status == http.StatusUnauthorized {
		// The session may have expired since the last call; nothing was
		// started, so the request can be made again with a new one.
		if err = c.renewSession(ctx, c.statusError(r)); err == nil {
			r, err = post()
		}
	}
	if err != nil {
		return nil, err
	}
	return c.jobFrom(r, us)
}

// PushMultipart uploads the image (size bytes read from file; name is the
// part's filename) to the MultipartHttpPushUri uri as multipart/form-data:
// an "UpdateParameters" part (application/json: the targets, when not
// empty, and "@Redfish.OperationApplyTime": "Immediate") then the
// "UpdateFile" part. The body is streamed with a Content-Length computed up
// front (BMCs refuse chunked uploads); file must give exactly size bytes.
func (c *Client) PushMultipart(ctx context.Context, uri string, file io.Reader, size int64, name string, targets []string) (*Job, error) {
	if size <= 0 {
		return nil, fmt.Errorf("redfish: push of an image of %d bytes", size)
	}
	us, err := c.currentUpdateService(ctx)
	if err != nil {
		return nil, err
	}
	target, err := c.resolve(serviceRoot, uri)
	if err != nil {
		return nil, fmt.Errorf("redfish at %s: push URI: %w", c.endpoint, err)
	}
	params := map[string]any{"@Redfish.OperationApplyTime": "Immediate"}
	if len(targets) > 0 {
		params["Targets"] = targets
	}
	js, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	fields := []formField{{name: "UpdateParameters", ctype: "application/json", value: js}}
	return c.pushForm(ctx, target, us, fields, "UpdateFile", name, file, size)
}

// PushHPE uploads the image to an iLO's HttpPushUri (/cgi-bin/uploadFile),
// which is not the raw push DMTF describes but a form of iLO's own: a
// "sessionKey" part (the session token), a "parameters" part
// ({"UpdateRepository": true, "UpdateTarget": true, ...}: keep it in the
// iLO Repository and flash it) and the "file" part, streamed with a
// Content-Length like PushMultipart. The iLO answers once it has checked the
// image; the flash is followed in Oem.Hpe.State (an HPE Job).
func (c *Client) PushHPE(ctx context.Context, uri string, file io.Reader, size int64, name string) (*Job, error) {
	if size <= 0 {
		return nil, fmt.Errorf("redfish: push of an image of %d bytes", size)
	}
	us, err := c.currentUpdateService(ctx)
	if err != nil {
		return nil, err
	}
	if !us.caps.HPE {
		return nil, fmt.Errorf("redfish at %s: iLO upload: %w (no Oem.Hpe in the UpdateService)", c.endpoint, ErrNotSupported)
	}
	target, err := c.resolve(serviceRoot, uri)
	if err != nil {
		return nil, fmt.Errorf("redfish at %s: push URI: %w", c.endpoint, err)
	}
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	params := []byte(`{"UpdateRepository":true,"UpdateTarget":true,"ETag":"fleetup","Section":0}`)
	fields := []formField{{name: "sessionKey", value: []byte(token)}, {name: "parameters", ctype: "application/json", value: params}}
	return c.pushForm(ctx, target, us, fields, "file", name, file, size)
}

// pushForm uploads fields then the image as multipart/form-data.
func (c *Client) pushForm(ctx context.Context, target string, us updateService, fields []formField, fileField, name string, file io.Reader, size int64) (*Job, error) {
	head, tail, ctype, err := multipartFrame(fields, fileField, name)
	if err != nil {
		return nil, err
	}
	body := io.MultiReader(bytes.NewReader(head), &exactReader{r: file, left: size}, bytes.NewReader(tail))
	r, err := c.upload(ctx, target, body, int64(len(head))+size+int64(len(tail)), ctype)
	if err != nil {
		return nil, err
	}
	return c.jobFrom(r, us)
}

// PushHTTP uploads the raw image (size bytes read from file) to the
// HttpPushUri uri as application/octet-stream, streamed, with its
// Content-Length.
func (c *Client) PushHTTP(ctx context.Context, uri string, file io.Reader, size int64) (*Job, error) {
	if size <= 0 {
		return nil, fmt.Errorf("redfish: push of an image of %d bytes", size)
	}
	us, err := c.currentUpdateService(ctx)
	if err != nil {
		return nil, err
	}
	target, err := c.resolve(serviceRoot, uri)
	if err != nil {
		return nil, fmt.Errorf("redfish at %s: push URI: %w", c.endpoint, err)
	}
	r, err := c.upload(ctx, target, &exactReader{r: file, left: size}, size, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	return c.jobFrom(r, us)
}

// currentUpdateService reads the UpdateService named by the service root.
func (c *Client) currentUpdateService(ctx context.Context) (updateService, error) {
	c.mu.Lock()
	uri := c.root.updateService
	c.mu.Unlock()
	if uri == "" {
		return updateService{}, fmt.Errorf("redfish at %s: no UpdateService: %w", c.endpoint, ErrNotSupported)
	}
	return c.updateService(ctx, uri)
}

// formField is a part of a multipart form before the file.
type formField struct {
	name  string
	ctype string // "" for none
	value []byte
}

// multipartFrame returns what goes before and after the image in a
// multipart upload (the fields, then the file part's header; the closing
// boundary), and the Content-Type with its boundary. Writing the image
// between the two makes the body: nothing of it is held in memory.
func multipartFrame(fields []formField, fileField, filename string) (head, tail []byte, ctype string, err error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, nil, "", err
	}
	boundary := "fleetup-" + hex.EncodeToString(rnd[:])
	var h bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&h, "--%s\r\nContent-Disposition: form-data; name=%q\r\n", boundary, f.name)
		if f.ctype != "" {
			fmt.Fprintf(&h, "Content-Type: %s\r\n", f.ctype)
		}
		h.WriteString("\r\n")
		h.Write(f.value)
		h.WriteString("\r\n")
	}
	fmt.Fprintf(&h, "--%s\r\nContent-Disposition: form-data; name=%q; filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n",
		boundary, fileField, partFilename(filename))
	tail = []byte("\r\n--" + boundary + "--\r\n")
	return h.Bytes(), tail, "multipart/form-data; boundary=" + boundary, nil
}

// partFilename is name made safe inside a quoted Content-Disposition
// parameter: its base name, printable ASCII, no quote or backslash.
func partFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	var b strings.Builder
	for _, r := range name {
		if r > 0x20 && r < 0x7f && r != '"' && r != '\\' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if s := b.String(); s != "" && s != "." && s != "/" {
		return s
	}
	return "image.bin"
}

// exactReader gives exactly left bytes of r, failing with ErrSizeMismatch
// when r has fewer or more. An r with more is found out before the last
// byte is given, so that the BMC never receives a complete body cut from a
// longer image.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if e.left == 0 && n > 0 {
		var one [1]byte
		if k, _ := io.ReadFull(e.r, one[:]); k > 0 {
			return n - 1, fmt.Errorf("image longer than announced: %w", ErrSizeMismatch)
		}
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		return n, fmt.Errorf("image shorter than announced (%d bytes missing): %w", e.left, ErrSizeMismatch)
	}
	return n, err
}

// errStalled is the cause of an upload cancelled for lack of progress.
var errStalled = errors.New("no progress")

// upload posts body (size bytes) to uri. It is not bounded by
// RequestTimeout as a whole, since images are large and links slow, but by
// its progress: it fails when no byte could be sent, or no answer came
// after the last byte, for RequestTimeout.
func (c *Client) upload(ctx context.Context, uri string, body io.Reader, size int64, ctype string) (*reply, error) {
	uctx, cancel := context.WithCancelCause(context.WithValue(ctx, noDeadlineKey{}, true))
	defer cancel(nil)
	timeout := c.cfg.RequestTimeout
	stall := time.AfterFunc(timeout, func() { cancel(errStalled) })
	defer stall.Stop()
	w := &watchedReader{r: body, kick: func() { stall.Reset(timeout) }}
	r, err := c.do(uctx, request{method: http.MethodPost, uri: uri, body: w, size: size, ctype: ctype})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(context.Cause(uctx), errStalled) {
			return nil, &UnreachableError{Endpoint: c.endpoint, Err: fmt.Errorf("POST %s: upload stalled (%d of %d bytes sent, nothing for %s)", uri, w.count(), size, timeout)}
		}
		if err := w.failure(); err != nil {
			return nil, fmt.Errorf("redfish at %s: POST %s: %w", c.endpoint, uri, err)
		}
		return nil, err
	}
	if err := w.failure(); err != nil {
		return nil, fmt.Errorf("redfish at %s: POST %s: %w (the BMC answered %d)", c.endpoint, uri, err, r.status)
	}
	return r, nil
}

// watchedReader calls kick at every read that made progress, and at the
// end of the body (the wait for the answer starts then). It keeps the
// body's own failure, which the HTTP client would bury in its own error.
type watchedReader struct {
	r    io.Reader
	kick func()
	mu   sync.Mutex
	n    int64
	err  error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.mu.Lock()
	w.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		w.err = err
	}
	w.mu.Unlock()
	if n > 0 || err != nil {
		w.kick()
	}
	return n, err
}

func (w *watchedReader) count() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *watchedReader) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// jobFrom makes the Job of the BMC's answer to an update request.
func (c *Client) jobFrom(r *reply, us updateService) (*Job, error) {
	if !r.ok() {
		if r.status >= 500 {
			return nil, &UnreachableError{Endpoint: c.endpoint, Err: c.statusError(r)}
		}
		return nil, c.statusError(r)
	}
	job := &Job{Started: time.Now(), hpeBefore: us.hpe}
	loc := r.header.Get("Location")
	var monitor string
	if loc != "" {
		p, err := c.resolve(r.uri, loc)
		if err != nil {
			return nil, fmt.Errorf("redfish at %s: the update's Location: %w", c.endpoint, err)
		}
		monitor = p
	}
	// A body that is a Task names the task itself: better than a task
	// monitor, which forgets the task once it has ended.
	if t, err := parseTask(r.body); err == nil && t.state != "" && t.id != "" {
		if p, err := c.resolve(r.uri, t.id); err == nil {
			job.TaskURI = p
		}
	}
	if job.TaskURI == "" {
		job.TaskURI = monitor
	}
	job.ID = jobID(job.TaskURI)
	if job.TaskURI == "" && us.caps.HPE {
		job.HPE = true
	}
	c.log.Info("redfish: update accepted", "status", r.status, "task", job.TaskURI, "hpe", job.HPE)
	return job, nil
}
