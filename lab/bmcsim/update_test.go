package bmcsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// TestILOSimpleUpdate pulls iLO firmware the way fleetup's manager would
// with gofish: SimpleUpdate answers 200 without a task, progress shows in
// UpdateService's Oem.Hpe.State, the iLO resets, old sessions are dead, and
// it comes back with the new version.
func TestILOSimpleUpdate(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, ILO))
	img := Image("iLO 5", "2.78", filler(256<<10))
	srv := imageServer(t, map[string][]byte{"/ilo5_278.bin": img})
	c := connect(t, b)

	if got := managerFirmware(t, c); got != "iLO 5 v2.72" {
		t.Errorf("Manager.FirmwareVersion = %q, want iLO 5 v2.72", got)
	}
	systems, err := c.Service.Systems()
	if err != nil || len(systems) != 1 {
		t.Fatalf("systems: %v", err)
	}
	if s := systems[0]; s.Manufacturer != "HPE" || s.BiosVersion != "U32 v2.68 (07/14/2022)" || s.SerialNumber == "" {
		t.Errorf("system: %q %q %q", s.Manufacturer, s.BiosVersion, s.SerialNumber)
	}
	if inv := inventory(t, c); inv["1"] != "2.72" || inv["2"] == "" {
		t.Errorf("inventory %v", inv)
	}
	us, err := c.Service.UpdateService()
	if err != nil {
		t.Fatal(err)
	}
	info, err := us.SimpleUpdate(&schemas.UpdateServiceSimpleUpdateParameters{
		ImageURI: srv.URL + "/ilo5_278.bin", TransferProtocol: schemas.HTTPTransferProtocolType})
	if err != nil {
		t.Fatalf("SimpleUpdate: %v", err)
	}
	if info != nil {
		t.Errorf("SimpleUpdate made a task %+v; iLO 5 makes none", info)
	}
	// Follow Oem.Hpe.State until the iLO goes away.
	seen := map[string]bool{}
	waitFor(t, 10*time.Second, "the iLO to reset", func() bool {
		o, _, err := getJSON(c, "/redfish/v1/UpdateService/")
		if err != nil {
			return true
		}
		seen[str(o, "Oem", "Hpe", "State")] = true
		return false
	})
	if !seen["Updating"] || !seen["Complete"] {
		t.Errorf("states seen %v, want Updating and Complete among them", seen)
	}
	if _, _, err := getJSON(c, "/redfish/v1/Managers/1/"); err == nil {
		t.Errorf("GET during or after the reset with the old session worked")
	}
	c2 := waitBack(t, b)
	defer c2.Logout()
	if _, status, _ := getJSON(c, "/redfish/v1/Managers/1/"); status != http.StatusUnauthorized {
		t.Errorf("old session after the reset: status %d, want 401", status)
	}
	if got := managerFirmware(t, c2); got != "iLO 5 v2.78" {
		t.Errorf("after the update Manager.FirmwareVersion = %q, want iLO 5 v2.78", got)
	}
	o := mustGet(t, c2, "/redfish/v1/UpdateService/")
	if s := str(o, "Oem", "Hpe", "State"); s != "Complete" {
		t.Errorf("State after the update = %q, want Complete", s)
	}
	if got := b.Versions()["1"]; got != "2.78" {
		t.Errorf("Versions()[1] = %q", got)
	}
	f := lastFlash(t, b, 1)
	if f.Via != "SimpleUpdate" || f.Target != "1" || f.Version != "2.78" || f.Bytes != int64(len(img)) ||
		f.Protocol != "HTTP" || f.ImageURI != srv.URL+"/ilo5_278.bin" || f.Err != "" || f.Ended.Before(f.Started) {
		t.Errorf("flash %+v", f)
	}
	if b.OpenSessions() != 1 {
		t.Errorf("OpenSessions = %d, want 1 (the new login)", b.OpenSessions())
	}
}

// TestIDRACSimpleUpdate pulls iDRAC firmware: 202 with a task at
// /redfish/v1/TaskService/Tasks/JID_…, which goes once the iDRAC resets;
// the job stays in the job queue, and the inventory entry is renamed after
// the new version with the old one kept as Previous-.
func TestIDRACSimpleUpdate(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, IDRAC))
	srv := imageServer(t, map[string][]byte{"/iDRAC_7.10.bin": Image("25227", "7.10.00.00", filler(100<<10))})
	c := connect(t, b)
	if got := managerFirmware(t, c); got != "7.00.00.00" {
		t.Errorf("Manager.FirmwareVersion = %q", got)
	}
	us, err := c.Service.UpdateService()
	if err != nil {
		t.Fatal(err)
	}
	info, err := us.SimpleUpdate(&schemas.UpdateServiceSimpleUpdateParameters{
		ImageURI: srv.URL + "/iDRAC_7.10.bin", TransferProtocol: schemas.HTTPTransferProtocolType})
	if err != nil {
		t.Fatalf("SimpleUpdate: %v", err)
	}
	if info == nil || !strings.HasPrefix(info.TaskMonitor, "/redfish/v1/TaskService/Tasks/JID_") {
		t.Fatalf("task monitor %+v", info)
	}
	jid := strings.TrimPrefix(info.TaskMonitor, "/redfish/v1/TaskService/Tasks/")
	states := map[string]bool{}
	waitFor(t, 10*time.Second, "the iDRAC to reset", func() bool {
		o, status, err := getJSON(c, info.TaskMonitor)
		if err != nil {
			return true
		}
		if status == http.StatusAccepted && o["Name"] != "Task" {
			t.Errorf("running task %v", o)
		}
		states[str(o, "TaskState")] = true
		return false
	})
	if !states["Running"] {
		t.Errorf("task states seen %v", states)
	}
	c2 := waitBack(t, b)
	defer c2.Logout()
	if _, status, _ := getJSON(c2, info.TaskMonitor); status != http.StatusNotFound {
		t.Errorf("task after the reset: %d, want 404", status)
	}
	for _, p := range []string{"/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/", "/redfish/v1/JobService/Jobs/"} {
		o := mustGet(t, c2, p+jid)
		if str(o, "JobState") != "Completed" || path(o, "PercentComplete") != float64(100) || str(o, "Message") == "" {
			t.Errorf("job %s: %v", p+jid, o)
		}
	}
	inv := inventory(t, c2)
	if inv["Installed-25227-7.10.00.00"] != "7.10.00.00" || inv["Previous-25227-7.00.00.00"] != "7.00.00.00" {
		t.Errorf("inventory %v", inv)
	}
	if got := managerFirmware(t, c2); got != "7.10.00.00" {
		t.Errorf("Manager.FirmwareVersion = %q", got)
	}
	if f := lastFlash(t, b, 1); f.Target != "Installed-25227-7.10.00.00" || f.Version != "7.10.00.00" {
		t.Errorf("flash %+v", f)
	}
}

// TestIDRACMultipartBIOS pushes BIOS firmware to an iDRAC's
// MultipartHttpPushUri with gofish: the task completes, the BIOS version
// changes at once and the iDRAC does not reset.
func TestIDRACMultipartBIOS(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, IDRAC))
	c := connect(t, b)
	defer c.Logout()
	us, err := c.Service.UpdateService()
	if err != nil {
		t.Fatal(err)
	}
	if us.MultipartHTTPPushURI != "/redfish/v1/UpdateService/MultipartUpload" {
		t.Fatalf("MultipartHttpPushUri %q", us.MultipartHTTPPushURI)
	}
	resp, err := c.PostMultipart(us.MultipartHTTPPushURI, map[string]io.Reader{
		"UpdateParameters": strings.NewReader(`{"Targets":[],"@Redfish.OperationApplyTime":"Immediate"}`),
		"UpdateFile":       bytes.NewReader(Image("BIOS", "1.7.2", filler(64<<10))),
	})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/redfish/v1/TaskService/Tasks/JID_") {
		t.Fatalf("push answered %d, Location %q", resp.StatusCode, loc)
	}
	task, _, err := schemas.WaitForTaskMonitorObject[schemas.Task](context.Background(), c, 50*time.Millisecond,
		&schemas.TaskMonitorInfo{TaskMonitor: loc}, nil)
	if err != nil {
		t.Fatalf("wait for task: %v", err)
	}
	if task.TaskState != schemas.CompletedTaskState {
		t.Errorf("task state %s", task.TaskState)
	}
	systems, err := c.Service.Systems()
	if err != nil {
		t.Fatal(err)
	}
	if systems[0].BiosVersion != "1.7.2" {
		t.Errorf("BiosVersion %q", systems[0].BiosVersion)
	}
	if b.Resetting() {
		t.Errorf("a BIOS update reset the iDRAC")
	}
	if v := b.Versions()["Installed-159-1.7.2"]; v != "1.7.2" {
		t.Errorf("versions %v", b.Versions())
	}
	if f := lastFlash(t, b, 1); f.Via != "MultipartHttpPushUri" || f.Target != "Installed-159-1.7.2" {
		t.Errorf("flash %+v", f)
	}
}

// TestOpenBMCPush pushes a raw image to an OpenBMC's HttpPushUri: 202 with
// the task in the body and a task monitor in Location, the BMC resets and
// comes back with the new version; the task is gone with the reset.
func TestOpenBMCPush(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, OpenBMC))
	c := connect(t, b)
	us, err := c.Service.UpdateService()
	if err != nil {
		t.Fatal(err)
	}
	if us.HTTPPushURI != "/redfish/v1/UpdateService" || us.MultipartHTTPPushURI != "/redfish/v1/UpdateService/update" {
		t.Errorf("push URIs %q %q", us.HTTPPushURI, us.MultipartHTTPPushURI)
	}
	img := Image("bmc", "2.15.0", filler(300<<10))
	resp, err := c.RunRawRequestWithHeaders(http.MethodPost, us.HTTPPushURI, bytes.NewReader(img), "application/octet-stream", nil)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	info := schemas.ParseTaskMonitorInfo(c, resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || info.TaskMonitor != "/redfish/v1/TaskService/Tasks/0/Monitor" ||
		info.Task == nil || info.Task.ODataID != "/redfish/v1/TaskService/Tasks/0" {
		t.Fatalf("push answered %d, %+v", resp.StatusCode, info)
	}
	// The monitor says 202 until the task ends, then 204, shortly before
	// the BMC resets. (Polled faster than its Retry-After says.)
	var statuses []int
	waitFor(t, 10*time.Second, "the task monitor to end", func() bool {
		_, st, err := getJSON(c, info.TaskMonitor)
		if err != nil && st == 0 {
			return true
		}
		if len(statuses) == 0 || statuses[len(statuses)-1] != st {
			statuses = append(statuses, st)
		}
		return st != http.StatusAccepted
	})
	if fmt.Sprint(statuses) != "[202 204]" {
		t.Errorf("task monitor said %v, want 202 then 204", statuses)
	}
	if _, st, _ := getJSON(c, info.TaskMonitor); st != http.StatusNotFound && st != 0 {
		t.Errorf("task monitor after its 204: %d, want 404 (or down)", st)
	}
	waitFor(t, 5*time.Second, "the reset", b.Resetting)
	c2 := waitBack(t, b)
	defer c2.Logout()
	if got := managerFirmware(t, c2); got != "2.15.0" {
		t.Errorf("Manager.FirmwareVersion %q", got)
	}
	if _, status, _ := getJSON(c2, "/redfish/v1/TaskService/Tasks/0"); status != http.StatusNotFound {
		t.Errorf("task after reset: %d", status)
	}
	if f := lastFlash(t, b, 1); f.Via != "HttpPushUri" || f.Target != "bmc_active" || f.Bytes != int64(len(img)) {
		t.Errorf("flash %+v", f)
	}
}

// TestOpenBMCMultipartStaged pushes a multipart image without an apply
// time: bmcweb stages it (OnReset), the task shows Stopping, and the next
// Manager.Reset activates it.
func TestOpenBMCMultipartStaged(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, OpenBMC))
	c := connect(t, b)
	resp, err := c.PostMultipart("/redfish/v1/UpdateService/update", map[string]io.Reader{
		"UpdateParameters": strings.NewReader(`{"Targets":["/redfish/v1/Managers/bmc"]}`),
		"UpdateFile":       bytes.NewReader(Image("OpenBmc", "2.16.0", filler(10<<10))),
	})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	resp.Body.Close()
	waitFor(t, 5*time.Second, "the task to stop", func() bool {
		o, _, err := getJSON(c, "/redfish/v1/TaskService/Tasks/0")
		return err == nil && str(o, "TaskState") == "Stopping"
	})
	if v := b.Versions()["bmc_active"]; v != "2.14.0-dev" {
		t.Errorf("staged image active already: %q", v)
	}
	ms, err := c.Service.Managers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms[0].Reset(schemas.GracefulRestartResetType); err != nil {
		t.Fatalf("Manager.Reset: %v", err)
	}
	waitFor(t, 5*time.Second, "the reset", b.Resetting)
	c2 := waitBack(t, b)
	defer c2.Logout()
	if got := managerFirmware(t, c2); got != "2.16.0" {
		t.Errorf("after reset Manager.FirmwareVersion %q", got)
	}
}

// TestILOUpload pushes a System ROM image to iLO's /cgi-bin/uploadFile form
// with the session in the sessionKey part, as HPE's examples do.
func TestILOUpload(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, ILO))
	c := connect(t, b)
	defer c.Logout()
	sess, err := c.GetSession()
	if err != nil {
		t.Fatal(err)
	}
	form := func(img []byte, target bool) (string, *bytes.Buffer) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("sessionKey", sess.Token)
		_ = mw.WriteField("parameters", fmt.Sprintf(`{"UpdateRepository":true,"UpdateTarget":%v,"ETag":"atag","Section":0}`, target))
		fw, _ := mw.CreateFormFile("file", "U32_2.72.signed.flash")
		_, _ = fw.Write(img)
		_ = mw.Close()
		return mw.FormDataContentType(), &body
	}
	ct, body := form(Image("System ROM", "U32 v2.72 (03/01/2023)", filler(32<<10)), true)
	status, _, o := do(t, b, http.MethodPost, "/cgi-bin/uploadFile", map[string]string{"Content-Type": ct}, body)
	if status != http.StatusOK {
		t.Fatalf("upload: %d %v", status, o)
	}
	waitFor(t, 5*time.Second, "the flash", func() bool { return b.Versions()["2"] == "U32 v2.72 (03/01/2023)" })
	systems, err := c.Service.Systems()
	if err != nil {
		t.Fatal(err)
	}
	if systems[0].BiosVersion != "U32 v2.72 (03/01/2023)" {
		t.Errorf("BiosVersion %q", systems[0].BiosVersion)
	}
	// Without a session: 401.
	ct, body = form(Image("System ROM", "x", nil), true)
	req, _ := http.NewRequest(http.MethodPost, b.URL()+"/cgi-bin/uploadFile", strings.NewReader(strings.Replace(body.String(), sess.Token, "nope", 1)))
	req.Header.Set("Content-Type", ct)
	if st := statusFor(t, req); st != http.StatusUnauthorized {
		t.Errorf("upload without a session: %d", st)
	}
	// A file that is no image: 400 UpdateInvalidFile, and State Error.
	ct, body = form([]byte("MZ\x90\x00 not an image"), true)
	status, _, o = do(t, b, http.MethodPost, "/cgi-bin/uploadFile", map[string]string{"Content-Type": ct}, body)
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(o), "iLO.2.15.UpdateInvalidFile") {
		t.Errorf("bad upload: %d %v", status, o)
	}
	o = mustGet(t, c, "/redfish/v1/UpdateService/")
	if str(o, "Oem", "Hpe", "State") != "Error" || str(o, "Oem", "Hpe", "Result", "MessageId") != "iLO.2.15.UpdateInvalidFile" {
		t.Errorf("UpdateService after a bad upload: %v", path(o, "Oem", "Hpe"))
	}
}

// failureCheck reads how a flavor reports a failed update, with c.
type failureCheck func(t *testing.T, b *BMC, c *gofish.APIClient, task string) string

// iloFailure waits for State Error and returns Result's MessageId and
// arguments.
func iloFailure(t *testing.T, b *BMC, c *gofish.APIClient, _ string) string {
	var o map[string]any
	waitFor(t, 10*time.Second, "State Error", func() bool {
		o = mustGet(t, c, "/redfish/v1/UpdateService/")
		return str(o, "Oem", "Hpe", "State") == "Error"
	})
	return fmt.Sprint(path(o, "Oem", "Hpe", "Result"))
}

// taskFailure waits for the task to end in Exception and returns its
// messages.
func taskFailure(t *testing.T, b *BMC, c *gofish.APIClient, task string) string {
	var o map[string]any
	waitFor(t, 10*time.Second, "the task to fail", func() bool {
		o = mustGet(t, c, task)
		return str(o, "TaskState") == "Exception"
	})
	if str(o, "TaskStatus") != "Critical" {
		t.Errorf("TaskStatus %q", str(o, "TaskStatus"))
	}
	return messagesText(o)
}

// TestPullFailures: images the BMC cannot get, and images it will not take,
// fail in the flavor's words, naming the URI and the cause.
func TestPullFailures(t *testing.T) {
	t.Parallel()
	good := Image("BIOS", "9.9.9", filler(1000))
	truncating := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write(good[:500])
		// Returning with fewer bytes than promised ends the
		// connection.
	})
	mux := http.NewServeMux()
	mux.Handle("/good.bin", fileHandler(map[string][]byte{"/good.bin": good}))
	mux.Handle("/noheader.bin", fileHandler(map[string][]byte{"/noheader.bin": filler(5000)}))
	mux.Handle("/otherbox.bin", fileHandler(map[string][]byte{"/otherbox.bin": Image("PERC H755", "52.0", nil)}))
	mux.Handle("/short.bin", truncating)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/x.bin"
	dead.Close()

	cases := []struct {
		name, uri string
		want      map[Flavor][]string // substrings of the failure, per flavor
	}{
		{"refused", deadURL, map[Flavor][]string{
			ILO:   {"iLO.2.15.UpdateFailed", deadURL, "connection refused"},
			IDRAC: {"Update.1.0.TransferFailed", deadURL, "connection refused"}}},
		{"404", srv.URL + "/missing.bin", map[Flavor][]string{
			ILO:   {"iLO.2.15.UpdateFailed", "/missing.bin", "404"},
			IDRAC: {"RED003", "/missing.bin", "404"}}},
		{"no header", srv.URL + "/noheader.bin", map[Flavor][]string{
			ILO:   {"iLO.2.15.UpdateInvalidFile"},
			IDRAC: {"Update.1.0.VerificationFailed", "invalid image"}}},
		{"other target", srv.URL + "/otherbox.bin", map[Flavor][]string{
			ILO:   {"iLO.2.15.UpdateNotApplicable", "PERC H755"},
			IDRAC: {"Update.1.0.ApplyFailed", "PERC H755"}}},
		{"truncated", srv.URL + "/short.bin", map[Flavor][]string{
			ILO:   {"iLO.2.15.UpdateInterrupted", "broke off"},
			IDRAC: {"Update.1.0.TransferFailed", "broke off"}}},
	}
	for _, f := range []Flavor{ILO, IDRAC} {
		check := map[Flavor]failureCheck{ILO: iloFailure, IDRAC: taskFailure}[f]
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			b := startTest(t, testOptions(t, f))
			c := connect(t, b)
			defer c.Logout()
			us, err := c.Service.UpdateService()
			if err != nil {
				t.Fatal(err)
			}
			for i, tc := range cases {
				info, err := us.SimpleUpdate(&schemas.UpdateServiceSimpleUpdateParameters{ImageURI: tc.uri})
				if err != nil {
					t.Fatalf("%s: SimpleUpdate: %v", tc.name, err)
				}
				task := ""
				if info != nil {
					task = info.TaskMonitor
				}
				got := check(t, b, c, task)
				for _, w := range tc.want[f] {
					if !strings.Contains(got, w) {
						t.Errorf("%s: failure %q lacks %q", tc.name, got, w)
					}
				}
				fl := lastFlash(t, b, i+1)
				if fl.Err == "" || fl.Target != "" || fl.ImageURI != tc.uri {
					t.Errorf("%s: flash %+v", tc.name, fl)
				}
			}
			if len(b.Flashes()) != len(cases) {
				t.Errorf("flashes %d", len(b.Flashes()))
			}
			if v := b.Versions(); v[map[Flavor]string{ILO: "1", IDRAC: "Installed-25227-7.00.00.00"}[f]] == "" {
				t.Errorf("versions changed: %v", v)
			}
		})
	}
}

// TestOpenBMCPushFailures: bmcweb refuses a bad image at once with 400.
func TestOpenBMCPushFailures(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, OpenBMC))
	auth := map[string]string{"Content-Type": "application/octet-stream"}
	c := connect(t, b)
	defer c.Logout()
	sess, _ := c.GetSession()
	auth["X-Auth-Token"] = sess.Token
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"no header", filler(2000), "Invalid image format"},
		{"other target", Image("bios-of-another-box", "1", nil), "Incompatible image version"},
	} {
		status, _, o := do(t, b, http.MethodPost, "/redfish/v1/UpdateService", auth, bytes.NewReader(tc.img))
		if status != http.StatusBadRequest || str(o, "error", "code") != "OpenBMC.0.2.InvalidUpload" ||
			!strings.Contains(str(o, "error", "message"), tc.want) {
			t.Errorf("%s: %d %v", tc.name, status, o)
		}
	}
	if fs := b.Flashes(); len(fs) != 2 || fs[0].Err == "" {
		t.Errorf("flashes %+v", fs)
	}
	// An unknown content type.
	status, _, _ := do(t, b, http.MethodPost, "/redfish/v1/UpdateService", map[string]string{"X-Auth-Token": sess.Token, "Content-Type": "text/plain"}, strings.NewReader("x"))
	if status != http.StatusBadRequest {
		t.Errorf("text/plain push: %d", status)
	}
}

// TestTruncatedPush: a push that stops short of its Content-Length fails.
func TestTruncatedPush(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, OpenBMC))
	c := connect(t, b)
	defer c.Logout()
	sess, _ := c.GetSession()
	conn, err := tlsDial(b)
	if err != nil {
		t.Fatal(err)
	}
	img := Image("bmc", "3.0.0", filler(10000))
	fmt.Fprintf(conn, "POST /redfish/v1/UpdateService HTTP/1.1\r\nHost: bmc\r\nX-Auth-Token: %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", sess.Token, len(img)*2)
	_, _ = conn.Write(img)
	conn.Close()
	f := lastFlash(t, b, 1)
	if !strings.Contains(f.Err, "broke off") || f.Target != "" {
		t.Errorf("flash %+v", f)
	}
	if v := b.Versions()["bmc_active"]; v != "2.14.0-dev" {
		t.Errorf("version %q", v)
	}
}

// TestFlashOutlivesClient: once the BMC has the image, the update is its
// own: the client disconnecting does not stop it.
func TestFlashOutlivesClient(t *testing.T) {
	t.Parallel()
	for _, f := range Flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t, f)
			opts.FlashTime = 600 * time.Millisecond
			b := startTest(t, opts)
			c := connect(t, b)
			sess, _ := c.GetSession()
			bios := map[Flavor]string{ILO: "System ROM", IDRAC: "BIOS", OpenBMC: "bios"}[f]
			img := Image(bios, "7.7.7", filler(50<<10))
			conn, err := tlsDial(b)
			if err != nil {
				t.Fatal(err)
			}
			var req string
			switch f {
			case ILO, IDRAC:
				srv := imageServer(t, map[string][]byte{"/bios.bin": img})
				body := fmt.Sprintf(`{"ImageURI":%q}`, srv.URL+"/bios.bin")
				req = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: bmc\r\nX-Auth-Token: %s\r\nContent-Type: application/json\r\n"+
					"Content-Length: %d\r\n\r\n%s", simplePath, sess.Token, len(body), body)
			case OpenBMC:
				req = fmt.Sprintf("POST /redfish/v1/UpdateService HTTP/1.1\r\nHost: bmc\r\nX-Auth-Token: %s\r\n"+
					"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s", sess.Token, len(img), img)
			}
			_, _ = io.WriteString(conn, req)
			resp, err := http.ReadResponse(bufioReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
				t.Fatalf("update answered %s", resp.Status)
			}
			conn.Close()
			c.Logout()
			waitFor(t, 10*time.Second, "the flash to finish", func() bool {
				for _, fw := range b.Firmware() {
					if fw.BIOS && fw.Version == "7.7.7" {
						return true
					}
				}
				return false
			})
			if b.OpenSessions() != 0 {
				t.Errorf("sessions left: %d", b.OpenSessions())
			}
		})
	}
}

// TestNeverReturn: after NeverReturn, the next reset lasts until Close.
func TestNeverReturn(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, IDRAC)
	opts.ResetTime = 300 * time.Millisecond
	b := startTest(t, opts)
	c := connect(t, b)
	b.NeverReturn()
	ms, err := c.Service.Managers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms[0].Reset(schemas.ForceRestartResetType); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the reset", b.Resetting)
	time.Sleep(3 * opts.ResetTime)
	if !b.Resetting() || !refused(b) {
		t.Errorf("the BMC came back: resetting %v, refused %v", b.Resetting(), refused(b))
	}
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// TestResetWindow: a reset refuses connections first, then answers 503,
// then serves, without the sessions from before.
func TestResetWindow(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, IDRAC)
	opts.ResetTime = 1200 * time.Millisecond
	b := startTest(t, opts)
	c := connect(t, b)
	sess, _ := c.GetSession()
	status, _, _ := do(t, b, http.MethodPost, "/redfish/v1/Managers/iDRAC.Embedded.1/Actions/Manager.Reset",
		map[string]string{"X-Auth-Token": sess.Token, "Content-Type": "application/json"}, strings.NewReader(`{"ResetType":"GracefulRestart"}`))
	if status != http.StatusNoContent {
		t.Fatalf("Manager.Reset: %d", status)
	}
	var seq []string
	client := rawClient()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var what string
		resp, err := client.Get(b.URL() + "/redfish/v1/")
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			what = "refused"
		case err != nil:
			what = "error: " + err.Error()
		default:
			what = fmt.Sprint(resp.StatusCode)
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			resp.Body.Close()
		}
		if len(seq) == 0 || seq[len(seq)-1] != what {
			seq = append(seq, what)
		}
		if what == "200" && len(seq) > 1 {
			break
		}
		time.Sleep(15 * time.Millisecond)
		client.CloseIdleConnections()
	}
	got := strings.Join(seq, " ")
	if !strings.Contains(got, "refused 503 200") {
		t.Errorf("reset went %q, want refused, 503, 200", got)
	}
	if _, status, _ := getJSON(c, "/redfish/v1/Systems"); status != http.StatusUnauthorized {
		t.Errorf("old session after reset: %d", status)
	}
	if b.OpenSessions() != 0 {
		t.Errorf("sessions survived the reset: %d", b.OpenSessions())
	}
}

// TestSetReachable: an unreachable BMC refuses connections and drops the
// open ones; sessions survive, as they do when a network cuts out.
func TestSetReachable(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, OpenBMC))
	c := connect(t, b)
	defer c.Logout()
	b.SetReachable(false)
	if !refused(b) {
		t.Errorf("unreachable BMC took a connection")
	}
	if _, _, err := getJSON(c, "/redfish/v1/Systems/system"); err == nil {
		t.Errorf("GET on an unreachable BMC worked")
	}
	if b.Resetting() {
		t.Errorf("unreachable is not resetting")
	}
	b.SetReachable(true)
	if o := mustGet(t, c, "/redfish/v1/Systems/system"); str(o, "Id") != "system" {
		t.Errorf("system %v", o)
	}
}

// TestConcurrentClients: many clients log in, read and log out at once
// while an update runs.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, IDRAC))
	c := connect(t, b)
	defer c.Logout()
	resp, err := c.PostMultipart("/redfish/v1/UpdateService/MultipartUpload", map[string]io.Reader{
		"UpdateFile": bytes.NewReader(Image("159", "2.0.0", filler(1<<20))),
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func() {
			for j := 0; j < 5; j++ {
				cc, err := gofish.Connect(clientConfig(b))
				if err != nil {
					errs <- err
					return
				}
				if _, err := cc.Service.Systems(); err != nil {
					errs <- err
					return
				}
				if _, err := cc.Service.UpdateService(); err != nil {
					errs <- err
					return
				}
				cc.Logout()
			}
			errs <- nil
		}()
	}
	for i := 0; i < 20; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := b.OpenSessions(); n != 1 {
		t.Errorf("OpenSessions %d, want 1", n)
	}
	waitFor(t, 10*time.Second, "the BIOS flash", func() bool { return b.Versions()["Installed-159-2.0.0"] == "2.0.0" })
}

// TestBusy: a second update while one runs is refused.
func TestBusy(t *testing.T) {
	t.Parallel()
	for _, f := range Flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t, f)
			opts.FlashTime = time.Second
			b := startTest(t, opts)
			c := connect(t, b)
			defer c.Logout()
			sess, _ := c.GetSession()
			bios := map[Flavor]string{ILO: "System ROM", IDRAC: "BIOS", OpenBMC: "bios"}[f]
			srv := imageServer(t, map[string][]byte{"/b.bin": Image(bios, "2", nil)})
			send := func() int {
				if f == OpenBMC {
					st, _, _ := do(t, b, http.MethodPost, "/redfish/v1/UpdateService",
						map[string]string{"X-Auth-Token": sess.Token, "Content-Type": "application/octet-stream"}, bytes.NewReader(Image(bios, "2", nil)))
					return st
				}
				st, _, _ := do(t, b, http.MethodPost, simplePath,
					map[string]string{"X-Auth-Token": sess.Token, "Content-Type": "application/json"}, strings.NewReader(`{"ImageURI":"`+srv.URL+`/b.bin"}`))
				return st
			}
			if st := send(); st != http.StatusOK && st != http.StatusAccepted {
				t.Fatalf("first update: %d", st)
			}
			want := map[Flavor]int{ILO: http.StatusBadRequest, IDRAC: http.StatusServiceUnavailable, OpenBMC: http.StatusServiceUnavailable}[f]
			if st := send(); st != want {
				t.Errorf("second update: %d, want %d", st, want)
			}
		})
	}
}

// TestPullHTTPS: BMCs fetch from HTTPS servers without verifying them.
func TestPullHTTPS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(fileHandler(map[string][]byte{"/rom.bin": Image("System ROM", "U32 v3.00", nil)}))
	t.Cleanup(srv.Close)
	b := startTest(t, testOptions(t, ILO))
	c := connect(t, b)
	defer c.Logout()
	us, err := c.Service.UpdateService()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.SimpleUpdate(&schemas.UpdateServiceSimpleUpdateParameters{ImageURI: srv.URL + "/rom.bin", TransferProtocol: "HTTPS"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the flash", func() bool { return b.Versions()["2"] == "U32 v3.00" })
	// A protocol the iLO does not offer.
	_, err = us.SimpleUpdate(&schemas.UpdateServiceSimpleUpdateParameters{ImageURI: "tftp://127.0.0.1/x", TransferProtocol: "TFTP"})
	if statusOf(err) != http.StatusBadRequest {
		t.Errorf("TFTP: %v", err)
	}
}
