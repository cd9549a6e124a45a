package redfish

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder collects the progress reports of a Wait.
type recorder struct {
	mu  sync.Mutex
	all []Progress
}

func (r *recorder) add(p Progress) {
	r.mu.Lock()
	r.all = append(r.all, p)
	r.mu.Unlock()
}

func (r *recorder) states() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.all {
		s := p.State
		if p.Resetting {
			s = "(resetting)"
		}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.all {
		out = append(out, p.Messages...)
	}
	return out
}

func TestSimpleUpdate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flavor     string
		wantStates []string
		wantJob    Job
	}{
		{"dmtf", []string{"Running", "Completed"}, Job{TaskURI: "/redfish/v1/TaskService/Tasks/0", ID: "0"}},
		{"dell", []string{"Running", "Completed"}, Job{TaskURI: "/redfish/v1/TaskService/Tasks/JID_100", ID: "JID_100"}},
		{"hpe", []string{"Downloading", "Flashing", "Complete"}, Job{HPE: true}},
	}
	for _, tt := range tests {
		t.Run(tt.flavor, func(t *testing.T) {
			f := newFake(t, tt.flavor)
			c := connect(t, f)
			job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1:63002/fw.bin", "https", []string{"/redfish/v1/UpdateService/FirmwareInventory/fw00"})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.wantJob, *job, cmp.FilterPath(func(p cmp.Path) bool {
				return p.String() == "Started" || p.String() == "hpeBefore"
			}, cmp.Ignore())); d != "" {
				t.Errorf("job (-want +got):\n%s", d)
			}
			want := map[string]any{"ImageURI": "https://127.0.0.1:63002/fw.bin", "TransferProtocol": "HTTPS",
				"Targets": []any{"/redfish/v1/UpdateService/FirmwareInventory/fw00"}}
			if d := cmp.Diff(want, f.job.params); d != "" {
				t.Errorf("SimpleUpdate parameters (-want +got):\n%s", d)
			}
			var rec recorder
			if err := c.Wait(context.Background(), job, 5*time.Second, rec.add); err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if d := cmp.Diff(tt.wantStates, rec.states()); d != "" {
				t.Errorf("states (-want +got):\n%s", d)
			}
		})
	}
}

func TestWaitFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flavor    string
		wantState string
		wantMsg   string
	}{
		{"dmtf", "Exception", "Image is corrupt. (Update.1.0.ApplyFailed)"},
		{"dell", "Exception", "Unable to verify Update Package signature. (RED063)"},
		{"hpe", "Error", "iLO.2.14.UpdateFailedBadImage"},
	}
	for _, tt := range tests {
		t.Run(tt.flavor, func(t *testing.T) {
			f := newFake(t, tt.flavor)
			c := connect(t, f)
			job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1:63002/bad.bin", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.job.params["TransferProtocol"]; ok {
				t.Error("TransferProtocol sent though not given")
			}
			if _, ok := f.job.params["Targets"]; ok {
				t.Error("Targets sent though not given")
			}
			var rec recorder
			err = c.Wait(context.Background(), job, 5*time.Second, rec.add)
			var ue *UpdateError
			if !errors.As(err, &ue) {
				t.Fatalf("Wait: %v, want *UpdateError", err)
			}
			if ue.State != tt.wantState || !contains(ue.Messages, tt.wantMsg) {
				t.Errorf("UpdateError %+v, want state %s with message %q", ue, tt.wantState, tt.wantMsg)
			}
			if !contains(rec.messages(), tt.wantMsg) {
				t.Errorf("progress messages %q lack %q", rec.messages(), tt.wantMsg)
			}
		})
	}
}

func TestWaitThroughReset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flavor  string
		hpeIdle bool
		wantErr error
		wantURI string
	}{
		{"dmtf", "dmtf", false, nil, "/redfish/v1/TaskService/Tasks/0"},
		{"dell job moved", "dell", false, nil, "/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/JID_100"},
		{"hpe complete", "hpe", false, nil, ""},
		{"hpe idle after reset", "hpe", true, ErrOutcomeUnknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.flavor)
			f.flashTime, f.resetAt, f.hpeIdle = 600*time.Millisecond, 0.5, tt.hpeIdle
			c := connect(t, f)
			job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1:63002/fw.bin", "HTTPS", nil)
			if err != nil {
				t.Fatal(err)
			}
			var rec recorder
			err = c.Wait(context.Background(), job, 5*time.Second, rec.add)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Wait: %v, want %v", err, tt.wantErr)
			}
			if job.TaskURI != tt.wantURI {
				t.Errorf("TaskURI %q, want %q", job.TaskURI, tt.wantURI)
			}
			if !contains(rec.states(), "(resetting)") {
				t.Errorf("states %q: the reset was not reported", rec.states())
			}
			f.mu.Lock()
			resets, created := f.resets, f.created
			f.mu.Unlock()
			if resets != 1 || created != 2 {
				t.Errorf("%d resets, %d sessions created; want 1 and 2 (a login after the reset)", resets, created)
			}
			if err := c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := f.openSessions(); n != 0 {
				t.Errorf("%d sessions open after Close", n)
			}
		})
	}
}

func TestWaitForgottenJob(t *testing.T) {
	t.Parallel()
	f := newFake(t, "dmtf")
	f.flashTime, f.resetAt, f.forgetJobs = 400*time.Millisecond, 0.5, true
	c := connect(t, f, func(cfg *Config) { cfg.Grace = 200 * time.Millisecond })
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1:63002/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), job, 5*time.Second, nil); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Wait: %v, want ErrOutcomeUnknown", err)
	}
}

func TestWaitNeverBack(t *testing.T) {
	t.Parallel()
	f := newFake(t, "dell")
	f.flashTime, f.resetAt, f.neverBack = 200*time.Millisecond, 0.5, true
	c := connect(t, f)
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1:63002/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Wait(context.Background(), job, 400*time.Millisecond, nil)
	var rt *ResetTimeoutError
	if !errors.As(err, &rt) || rt.Endpoint != f.url() || rt.Waited < 400*time.Millisecond {
		t.Fatalf("Wait: %v, want *ResetTimeoutError after 400ms", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Wait took %s", d)
	}
}

func TestWaitCancel(t *testing.T) {
	for _, during := range []string{"running", "outage"} {
		t.Run(during, func(t *testing.T) {
			f := newFake(t, "dmtf")
			f.flashTime = time.Hour
			if during == "outage" {
				f.flashTime, f.resetAt, f.resetTime = 100*time.Millisecond, 0.5, time.Hour
			}
			c := connect(t, f)
			job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1:63002/fw.bin", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			err = c.Wait(ctx, job, time.Hour, nil)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait: %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Wait returned %s after the cancel", d-300*time.Millisecond)
			}
			if during == "outage" {
				f.comeBack() // the session is gone with the reset; Close must not hang
				c.Close(ctx)
				return
			}
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close after the cancel: %v", err)
			}
			if n := f.openSessions(); n != 0 {
				t.Errorf("%d sessions open after Close", n)
			}
		})
	}
}

func TestPushMultipart(t *testing.T) {
	f := newFake(t, "dmtf")
	c := connect(t, f)
	image := bytes.Repeat([]byte("firmware"), 1<<17) // 1 MiB
	job, err := c.PushMultipart(context.Background(), "/redfish/v1/UpdateService/upload", bytes.NewReader(image), int64(len(image)),
		"/depot/fw \"v2\".bin", []string{"/redfish/v1/UpdateService/FirmwareInventory/fw01"})
	if err != nil {
		t.Fatal(err)
	}
	if job.TaskURI != "/redfish/v1/TaskService/Tasks/0" {
		t.Errorf("TaskURI %q", job.TaskURI)
	}
	up := f.uploads[0]
	if up.chunked || up.contentLength <= int64(len(image)) {
		t.Errorf("chunked %v, Content-Length %d: want an explicit length", up.chunked, up.contentLength)
	}
	if d := cmp.Diff([]string{"UpdateParameters", "UpdateFile"}, up.parts); d != "" {
		t.Errorf("parts (-want +got):\n%s", d)
	}
	wantParams := `{"@Redfish.OperationApplyTime":"Immediate","Targets":["/redfish/v1/UpdateService/FirmwareInventory/fw01"]} application/json`
	if up.params != wantParams {
		t.Errorf("UpdateParameters %s, want %s", up.params, wantParams)
	}
	if up.filename != "fw__v2_.bin" || !bytes.Equal(up.file, image) {
		t.Errorf("UpdateFile %q of %d bytes", up.filename, len(up.file))
	}
	if err := c.Wait(context.Background(), job, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
}

// gatedReader gives n bytes, but stops halfway until open is closed.
type gatedReader struct {
	n, sent int64
	open    chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.sent == g.n {
		return 0, io.EOF
	}
	if g.sent == g.n/2 {
		select {
		case <-g.open:
		case <-time.After(5 * time.Second):
			return 0, errors.New("the upload is buffered: the BMC saw nothing of it before the whole image was read")
		}
	}
	k := min(int64(len(p)), g.n-g.sent)
	if g.sent < g.n/2 {
		k = min(k, g.n/2-g.sent)
	}
	clear(p[:k])
	g.sent += k
	return int(k), nil
}

func TestPushStreams(t *testing.T) {
	f := newFake(t, "dmtf")
	open := make(chan struct{})
	f.onUpload = func(r *http.Request) { close(open) } // the BMC has the request before the image was read whole
	c := connect(t, f)
	const size = 4 << 20
	if _, err := c.PushMultipart(context.Background(), "/redfish/v1/UpdateService/upload", &gatedReader{n: size, open: open}, size, "big.bin", nil); err != nil {
		t.Fatal(err)
	}
	if got := len(f.uploads[0].file); got != size {
		t.Errorf("the BMC got %d bytes", got)
	}
}

func TestPushHTTP(t *testing.T) {
	f := newFake(t, "dell")
	c := connect(t, f)
	image := []byte("raw image BAD")
	job, err := c.PushHTTP(context.Background(), "/redfish/v1/UpdateService/push", bytes.NewReader(image), int64(len(image)))
	if err != nil {
		t.Fatal(err)
	}
	up := f.uploads[0]
	if up.chunked || up.contentLength != int64(len(image)) || up.ctype != "application/octet-stream" || !bytes.Equal(up.file, image) {
		t.Errorf("upload %+v", up)
	}
	var ue *UpdateError
	if err := c.Wait(context.Background(), job, 5*time.Second, nil); !errors.As(err, &ue) || ue.JobID != "JID_100" {
		t.Errorf("Wait: %v, want the *UpdateError of JID_100", err)
	}
}

func TestPushSizeMismatch(t *testing.T) {
	f := newFake(t, "dmtf")
	c := connect(t, f)
	for _, tt := range []struct {
		name string
		data string
		size int64
	}{{"short", "abc", 10}, {"long", "abcdefghijkl", 10}} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PushHTTP(context.Background(), "/redfish/v1/UpdateService/push", strings.NewReader(tt.data), tt.size)
			if !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("PushHTTP: %v, want ErrSizeMismatch", err)
			}
			_, err = c.PushMultipart(context.Background(), "/redfish/v1/UpdateService/upload", strings.NewReader(tt.data), tt.size, "x", nil)
			if !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("PushMultipart: %v, want ErrSizeMismatch", err)
			}
		})
	}
}

func TestPushStalled(t *testing.T) {
	f := newFake(t, "dmtf")
	release := make(chan struct{})
	defer close(release)
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/redfish/v1/UpdateService/push" {
			return false
		}
		<-release // reads nothing: the upload stalls once the buffers are full
		return true
	}
	c := connect(t, f, func(cfg *Config) { cfg.RequestTimeout = 300 * time.Millisecond })
	const size = 64 << 20
	start := time.Now()
	_, err := c.PushHTTP(context.Background(), "/redfish/v1/UpdateService/push", io.LimitReader(zeros{}, size), size)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "stalled") {
		t.Errorf("PushHTTP: %v, want a stalled *UnreachableError", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the stall was noticed after %s", d)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestWaitService(t *testing.T) {
	f := newFake(t, "dmtf")
	c := connect(t, f)
	f.goDown()
	time.AfterFunc(200*time.Millisecond, f.comeBack)
	if err := c.WaitService(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if f.openSessions() != 1 {
		t.Errorf("%d sessions, want the new one", f.openSessions())
	}
	// A service that is up with a live session: no new login.
	if err := c.WaitService(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	created := f.created
	f.mu.Unlock()
	if created != 2 {
		t.Errorf("%d logins, want 2", created)
	}
	f.goDown()
	var rt *ResetTimeoutError
	if err := c.WaitService(context.Background(), 200*time.Millisecond); !errors.As(err, &rt) {
		t.Errorf("WaitService on a BMC that stays down: %v", err)
	}
	f.comeBack()
}

func TestWaitResetNone(t *testing.T) {
	f := newFake(t, "dmtf")
	c := connect(t, f)
	start := time.Now()
	reset, err := c.WaitReset(context.Background(), 200*time.Millisecond, time.Second)
	if reset || err != nil || time.Since(start) < 200*time.Millisecond {
		t.Errorf("WaitReset on a BMC that does not reset: %v, %v after %s", reset, err, time.Since(start))
	}
	time.AfterFunc(100*time.Millisecond, func() {
		f.goDown()
		time.AfterFunc(200*time.Millisecond, f.comeBack)
	})
	reset, err = c.WaitReset(context.Background(), 2*time.Second, 5*time.Second)
	if !reset || err != nil {
		t.Fatalf("WaitReset through a reset: %v, %v", reset, err)
	}
	if _, err := c.Inventory(context.Background()); err != nil {
		t.Errorf("Inventory after the reset: %v", err)
	}
}
