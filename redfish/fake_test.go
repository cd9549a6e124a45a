package redfish

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBMC is a small Redfish service for the unit tests, in three flavors
// that follow their vendors where this client cares: "dmtf" (OpenBMC-like:
// a task monitor and a Task), "dell" (iDRAC-like: a JID task that moves to
// the Manager's Jobs after a reset) and "hpe" (iLO-like: no task,
// Oem.Hpe.State). The hostile tests hook requests with override.
type fakeBMC struct {
	t      *testing.T
	flavor string
	user   string
	pass   string
	cert   tls.Certificate
	fp     [32]byte
	addr   string

	// Behaviour, set before use.
	flashTime  time.Duration // how long an update runs
	resetTime  time.Duration // how long the BMC is down when it resets
	resetAt    float64       // reset when this fraction of flashTime has passed (0: never)
	neverBack  bool          // a reset never ends
	forgetJobs bool          // the reset forgets tasks (404 forever)
	hpeIdle    bool          // hpe: Idle after the reset rather than Complete
	hpeStale   bool          // hpe: the previous update's Complete shows before the job and during its first 30%
	override   func(w http.ResponseWriter, r *http.Request) bool
	onUpload   func(r *http.Request) // called before an upload is read
	members    int                   // FirmwareInventory size

	mu       sync.Mutex
	srv      *http.Server
	ln       net.Listener
	up       bool
	sessions map[string]string // token → session URI
	nsess    int
	created  int
	job      *fakeJob
	resets   int
	uploads  []fakeUpload
	hits     map[string]int
	closed   bool
	done     chan struct{} // closed by close
	conns    map[net.Conn]bool
}

type fakeJob struct {
	id     string
	start  time.Time
	bad    bool
	reset  bool // the reset of this job happened
	moved  bool
	via    string
	params map[string]any
}

type fakeUpload struct {
	contentLength int64
	chunked       bool
	ctype         string
	parts         []string // part names, in order
	params        string   // UpdateParameters
	filename      string
	file          []byte
}

func newFake(t *testing.T, flavor string) *fakeBMC {
	t.Helper()
	return newFakeOn(t, flavor, "127.0.0.1:0")
}

// newFakeOn is newFake listening on addr.
func newFakeOn(t *testing.T, flavor, addr string) *fakeBMC {
	t.Helper()
	f := &fakeBMC{t: t, flavor: flavor, user: "admin", pass: "s3cret\"pw", flashTime: 300 * time.Millisecond,
		resetTime: 500 * time.Millisecond, sessions: map[string]string{}, hits: map[string]int{}, members: 3, done: make(chan struct{}), conns: map[net.Conn]bool{}}
	f.cert, f.fp = selfSigned(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("listen on %s: %v", addr, err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(f.close)
	return f
}

func (f *fakeBMC) url() string { return "https://" + f.addr }

func (f *fakeBMC) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(f.handle), ErrorLog: log.New(io.Discard, "", 0)}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{f.cert}}
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch st {
		case http.StateNew:
			f.conns[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(f.conns, c)
		}
	}
	f.mu.Lock()
	f.srv, f.ln, f.up = srv, ln, true
	f.mu.Unlock()
	go srv.Serve(tls.NewListener(gateListener{ln, f}, srv.TLSConfig))
}

// gateListener resets the connections it accepts while the BMC is down.
// The fake keeps its port through a reset: a port given back could be
// taken by a parallel test's listener, whose certificate the client would
// (rightly) refuse.
type gateListener struct {
	net.Listener
	f *fakeBMC
}

func (g gateListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		g.f.mu.Lock()
		up := g.f.up
		g.f.mu.Unlock()
		if up {
			return c, nil
		}
		abort(c)
	}
}

// abort closes c with a TCP reset.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// goDown drops every connection; the BMC resets new ones until comeBack.
func (f *fakeBMC) goDown() {
	f.mu.Lock()
	f.up = false
	f.resets++
	f.sessions = map[string]string{}
	conns := f.conns
	f.conns = map[net.Conn]bool{}
	f.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (f *fakeBMC) comeBack() {
	f.mu.Lock()
	if !f.closed {
		f.up = true
	}
	f.mu.Unlock()
}

func (f *fakeBMC) close() {
	f.mu.Lock()
	if !f.closed {
		close(f.done)
	}
	f.closed = true
	srv := f.srv
	f.mu.Unlock()
	srv.Close()
}

func (f *fakeBMC) openSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

func (f *fakeBMC) hit(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func link(p string) map[string]any { return map[string]any{"@odata.id": p} }

func (f *fakeBMC) managerID() string {
	switch f.flavor {
	case "dell":
		return "iDRAC.Embedded.1"
	case "hpe":
		return "1"
	}
	return "bmc"
}

func (f *fakeBMC) handle(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	f.mu.Unlock()
	if f.override != nil && f.override(w, r) {
		return
	}
	if _, _, resetNow := f.progress(); resetNow {
		f.reset(w)
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == "/redfish/v1" && r.Method == http.MethodGet:
		f.root(w)
		return
	case p == "/redfish/v1/SessionService/Sessions" && r.Method == http.MethodPost:
		f.login(w, r)
		return
	}
	f.mu.Lock()
	sess, ok := f.sessions[r.Header.Get("X-Auth-Token")]
	f.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": "Base.1.8.NoValidSession", "message": "No valid session"}})
		return
	}
	switch {
	case p == sess && r.Method == http.MethodDelete:
		f.mu.Lock()
		delete(f.sessions, r.Header.Get("X-Auth-Token"))
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case p == sess:
		writeJSON(w, 200, map[string]any{"@odata.id": sess, "UserName": f.user})
	case p == "/redfish/v1/Managers":
		writeJSON(w, 200, map[string]any{"Members": []any{link("/redfish/v1/Managers/" + f.managerID())}})
	case p == "/redfish/v1/Managers/"+f.managerID():
		f.mu.Lock()
		version := "1.0." + strconv.Itoa(f.resets)
		f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"@odata.id": p, "Id": f.managerID(), "Model": f.flavor + " model", "FirmwareVersion": version})
	case p == "/redfish/v1/Systems":
		writeJSON(w, 200, map[string]any{"Members": []any{link("/redfish/v1/Systems/1")}})
	case p == "/redfish/v1/Systems/1":
		writeJSON(w, 200, map[string]any{"@odata.id": p, "Id": "1", "Manufacturer": "Acme", "Model": "X1", "SerialNumber": "SN1", "PowerState": "On", "BiosVersion": "U30"})
	case p == "/redfish/v1/UpdateService" && r.Method == http.MethodGet:
		f.updateService(w)
	case p == "/redfish/v1/UpdateService/FirmwareInventory":
		var m []any
		for i := range f.members {
			m = append(m, link(fmt.Sprintf("/redfish/v1/UpdateService/FirmwareInventory/fw%02d", i)))
		}
		writeJSON(w, 200, map[string]any{"Members": m, "Members@odata.count": len(m)})
	case strings.HasPrefix(p, "/redfish/v1/UpdateService/FirmwareInventory/fw"):
		id := strings.TrimPrefix(p, "/redfish/v1/UpdateService/FirmwareInventory/")
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "fw"))
		time.Sleep(time.Duration(f.members-n) * time.Millisecond) // later members answer sooner
		writeJSON(w, 200, map[string]any{"@odata.id": p, "Id": id, "Name": "Firmware " + id, "Version": "v" + id, "SoftwareId": "sw-" + id, "Updateable": n%2 == 0})
	case p == "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate" && r.Method == http.MethodPost:
		var params map[string]any
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&params)
		uri, _ := params["ImageURI"].(string)
		f.startJob(w, "SimpleUpdate", strings.Contains(uri, "bad"), params)
	case p == "/redfish/v1/UpdateService/upload" && r.Method == http.MethodPost:
		f.multipart(w, r)
	case p == "/redfish/v1/UpdateService/push" && r.Method == http.MethodPost:
		f.push(w, r)
	default:
		f.task(w, r, p)
	}
}

func (f *fakeBMC) root(w http.ResponseWriter) {
	root := map[string]any{
		"@odata.id":      "/redfish/v1/",
		"@odata.type":    "#ServiceRoot.v1_5_0.ServiceRoot",
		"RedfishVersion": "1.6.0",
		"Links":          map[string]any{"Sessions": link("/redfish/v1/SessionService/Sessions")},
		"Managers":       link("/redfish/v1/Managers"),
		"Systems":        link("/redfish/v1/Systems"),
		"UpdateService":  link("/redfish/v1/UpdateService"),
	}
	switch f.flavor {
	case "dell":
		root["Vendor"] = "Dell"
	case "hpe":
		root["Oem"] = map[string]any{"Hpe": map[string]any{"Manager": []any{}}}
	default:
		root["Vendor"] = "OpenBMC"
	}
	writeJSON(w, 200, root)
}

func (f *fakeBMC) login(w http.ResponseWriter, r *http.Request) {
	var cred struct{ UserName, Password string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&cred); err != nil || cred.UserName != f.user || cred.Password != f.pass {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": "Base.1.8.GeneralError",
			"@Message.ExtendedInfo": []any{map[string]any{"MessageId": "Base.1.8.NoValidSession", "Message": "Login failed"}}}})
		return
	}
	f.mu.Lock()
	f.nsess++
	f.created++
	tok := fmt.Sprintf("token-%d-%d", f.nsess, time.Now().UnixNano())
	uri := fmt.Sprintf("/redfish/v1/SessionService/Sessions/%d", f.nsess)
	f.sessions[tok] = uri
	f.mu.Unlock()
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", uri)
	writeJSON(w, http.StatusCreated, map[string]any{"@odata.id": uri, "Id": strconv.Itoa(f.nsess)})
}

func (f *fakeBMC) updateService(w http.ResponseWriter) {
	us := map[string]any{
		"@odata.id":         "/redfish/v1/UpdateService",
		"Id":                "UpdateService",
		"ServiceEnabled":    true,
		"FirmwareInventory": link("/redfish/v1/UpdateService/FirmwareInventory"),
		"Actions": map[string]any{"#UpdateService.SimpleUpdate": map[string]any{
			"target": "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
			"TransferProtocol@Redfish.AllowableValues": []string{"https", "HTTP"},
		}},
		"MultipartHttpPushUri": "/redfish/v1/UpdateService/upload",
		"HttpPushUri":          "/redfish/v1/UpdateService/push",
	}
	if f.flavor == "hpe" {
		state, pct, result := f.hpeState()
		us["Oem"] = map[string]any{"Hpe": map[string]any{"State": state, "FlashProgressPercent": pct, "Result": map[string]any{"MessageId": result}}}
	}
	writeJSON(w, 200, us)
}

// progress is where the job is: its fraction of flashTime, and whether it
// reset now (the caller then answers nothing).
func (f *fakeBMC) progress() (frac float64, job *fakeJob, resetNow bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	job = f.job
	if job == nil {
		return 0, nil, false
	}
	frac = float64(time.Since(job.start)) / float64(f.flashTime)
	if f.resetAt > 0 && frac >= f.resetAt && !job.reset {
		job.reset = true
		job.moved = f.flavor == "dell"
		return frac, job, true
	}
	return frac, job, false
}

// reset takes the BMC down now and brings it back after resetTime.
func (f *fakeBMC) reset(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
	go func() {
		f.goDown()
		if f.neverBack {
			return
		}
		select {
		case <-time.After(f.resetTime):
			f.comeBack()
		case <-f.done:
		}
	}()
}

func (f *fakeBMC) hpeState() (string, int, string) {
	frac, job, _ := f.progress()
	switch {
	case (job == nil || frac < 0.3) && f.hpeStale:
		return "Complete", 100, "iLO.2.14.UpdateSuccessful"
	case job == nil:
		return "Idle", 0, "iLO.2.14.Success"
	case job.reset && f.hpeIdle:
		return "Idle", 0, ""
	case frac < 0.3:
		return "Downloading", 0, ""
	case frac < 1:
		return "Flashing", int(frac * 100), ""
	case job.bad:
		return "Error", 0, "iLO.2.14.UpdateFailedBadImage"
	}
	return "Complete", 100, "iLO.2.14.UpdateSuccessful"
}

func (f *fakeBMC) startJob(w http.ResponseWriter, via string, bad bool, params map[string]any) {
	f.mu.Lock()
	f.job = &fakeJob{id: "JID_100", start: time.Now(), bad: bad, via: via, params: params}
	f.mu.Unlock()
	switch f.flavor {
	case "dell":
		w.Header().Set("Location", "/redfish/v1/TaskService/Tasks/JID_100")
		w.WriteHeader(http.StatusAccepted)
	case "hpe":
		writeJSON(w, 200, map[string]any{"error": map[string]any{"code": "iLO.0.10.ExtendedInfo",
			"@Message.ExtendedInfo": []any{map[string]any{"MessageId": "iLO.2.14.Success"}}}})
	default:
		w.Header().Set("Location", "/redfish/v1/TaskService/Tasks/0/Monitor")
		writeJSON(w, http.StatusAccepted, map[string]any{"@odata.id": "/redfish/v1/TaskService/Tasks/0", "Id": "0", "TaskState": "Running"})
	}
}

func (f *fakeBMC) task(w http.ResponseWriter, r *http.Request, p string) {
	frac, job, _ := f.progress()
	if job == nil {
		http.NotFound(w, r)
		return
	}
	var known []string
	switch {
	case f.flavor == "dell" && job.moved:
		known = []string{"/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/JID_100"}
	case f.flavor == "dell":
		known = []string{"/redfish/v1/TaskService/Tasks/JID_100"}
	default:
		known = []string{"/redfish/v1/TaskService/Tasks/0", "/redfish/v1/TaskService/Tasks/0/Monitor"}
	}
	if job.reset && f.forgetJobs || !contains(known, p) {
		http.NotFound(w, r)
		return
	}
	state, pct := "Running", int(frac*100)
	if frac >= 1 {
		state, pct = "Completed", 100
		if job.bad {
			state = "Exception"
		}
	}
	if f.flavor == "dell" {
		js := map[string]string{"Running": "Running", "Completed": "Completed", "Exception": "Failed"}[state]
		msg, id := "Job in progress.", "PR20"
		if state == "Completed" {
			msg, id = "Job completed successfully.", "PR19"
		} else if state == "Exception" {
			msg, id = "Unable to verify Update Package signature.", "RED063"
		}
		if job.moved {
			writeJSON(w, 200, map[string]any{"@odata.id": p, "Id": job.id, "JobState": js, "PercentComplete": pct, "Message": msg, "MessageId": id})
			return
		}
		status := http.StatusAccepted
		if frac >= 1 {
			status = 200
		}
		writeJSON(w, status, map[string]any{"@odata.id": p, "Id": job.id, "TaskState": state, "PercentComplete": pct,
			"Oem": map[string]any{"Dell": map[string]any{"JobState": js, "Message": msg, "MessageId": id}}})
		return
	}
	doc := map[string]any{"@odata.id": "/redfish/v1/TaskService/Tasks/0", "Id": "0", "TaskState": state, "PercentComplete": pct,
		"Messages": []any{map[string]any{"MessageId": "TaskEvent.1.0.TaskStarted", "Message": "The task with Id '0' has started."}}}
	if state == "Exception" {
		doc["TaskStatus"] = "Critical"
		doc["Messages"] = append(doc["Messages"].([]any), map[string]any{"MessageId": "Update.1.0.ApplyFailed", "Message": "Image is corrupt."})
	}
	writeJSON(w, 200, doc)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (f *fakeBMC) multipart(w http.ResponseWriter, r *http.Request) {
	if f.onUpload != nil {
		f.onUpload(r)
	}
	up := fakeUpload{contentLength: r.ContentLength, chunked: len(r.TransferEncoding) > 0, ctype: r.Header.Get("Content-Type")}
	_, params, err := mime.ParseMediaType(up.ctype)
	if err != nil {
		writeJSON(w, 400, map[string]any{"error": map[string]any{"message": err.Error()}})
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"message": err.Error()}})
			return
		}
		b, _ := io.ReadAll(part)
		up.parts = append(up.parts, part.FormName())
		switch part.FormName() {
		case "UpdateParameters":
			up.params = string(b) + " " + part.Header.Get("Content-Type")
		case "UpdateFile":
			up.filename, up.file = part.FileName(), b
		}
	}
	f.mu.Lock()
	f.uploads = append(f.uploads, up)
	f.mu.Unlock()
	f.startJob(w, "multipart", strings.Contains(string(up.file), "BAD"), nil)
}

func (f *fakeBMC) push(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	up := fakeUpload{contentLength: r.ContentLength, chunked: len(r.TransferEncoding) > 0, ctype: r.Header.Get("Content-Type"), file: b}
	f.mu.Lock()
	f.uploads = append(f.uploads, up)
	f.mu.Unlock()
	f.startJob(w, "push", strings.Contains(string(b), "BAD"), nil)
}

// selfSigned makes a certificate for 127.0.0.1 and ::1, and its pin.
func selfSigned(t testing.TB) (tls.Certificate, [32]byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "fake bmc"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, sha256.Sum256(der)
}

// pinError is the test's own verification error, which Connect must let
// through.
type pinError struct{ got [32]byte }

func (e *pinError) Error() string { return fmt.Sprintf("certificate pin mismatch: %x", e.got[:8]) }

// pinned is a TLS configuration that accepts only the certificate whose
// SHA-256 is fp.
func pinned(fp [32]byte) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // verified by VerifyConnection against the pin
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			if got := sha256.Sum256(cs.PeerCertificates[0].Raw); got != fp {
				return &pinError{got}
			}
			return nil
		},
	}
}
