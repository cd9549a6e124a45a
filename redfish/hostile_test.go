package redfish

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These tests play a BMC that does what it should not.

// elsewhere is another HTTPS server, which must never be reached.
func elsewhere(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("X-Auth-Token") != "" {
			t.Errorf("the session token reached another host: %s %s", r.Method, r.URL)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func TestHostileOversizedBody(t *testing.T) {
	f := newFake(t, "dmtf")
	big := strings.Repeat(" ", 5<<20) // 5 MiB of whitespace is valid JSON padding
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/redfish/v1/Systems/1" {
			w.Write([]byte(`{"Id": "1",` + big + `"Model": "X"}`))
			return true
		}
		return false
	}
	c := connect(t, f)
	if _, err := c.Inventory(context.Background()); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("Inventory: %v, want ErrResponseTooLarge", err)
	}
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		w.Write([]byte(`{"RedfishVersion": "1.0.0",` + big + `}`))
		return true
	}
	_, err := Connect(context.Background(), testConfig(f))
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("Connect: %v, want ErrResponseTooLarge", err)
	}
}

func TestHostileForeignLocation(t *testing.T) {
	other, hits := elsewhere(t)
	for _, where := range []string{"location", "task body"} {
		t.Run(where, func(t *testing.T) {
			f := newFake(t, "dmtf")
			f.override = func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate" {
					return false
				}
				if where == "location" {
					w.Header().Set("Location", other.URL+"/redfish/v1/TaskService/Tasks/0")
					w.WriteHeader(http.StatusAccepted)
				} else {
					w.Header().Set("Location", "/redfish/v1/TaskService/Tasks/0/Monitor")
					writeJSON(w, http.StatusAccepted, map[string]any{"@odata.id": other.URL + "/x", "TaskState": "Running"})
				}
				return true
			}
			c := connect(t, f)
			job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
			if where == "location" {
				if !errors.Is(err, ErrForeignURI) {
					t.Errorf("SimpleUpdate: %v, want ErrForeignURI", err)
				}
				return
			}
			// A foreign task in the body is ignored; the Location is followed.
			if err != nil || job.TaskURI != "/redfish/v1/TaskService/Tasks/0/Monitor" {
				t.Errorf("SimpleUpdate: %+v, %v", job, err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestHostileRedirects(t *testing.T) {
	other, hits := elsewhere(t)
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.URL.Path == "/redfish/v1/SessionService/Sessions" && r.Header.Get("X-Test") == "":
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect) // would replay the password
			return true
		case r.URL.Path == "/redfish/v1/Systems":
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
			return true
		case r.URL.Path == "/redfish/v1/Managers/old":
			http.Redirect(w, r, "/redfish/v1/Managers/bmc", http.StatusMovedPermanently)
			return true
		case r.URL.Path == "/redfish/v1/Managers":
			writeJSON(w, 200, map[string]any{"Members": []any{link("/redfish/v1/Managers/old")}})
			return true
		}
		return false
	}
	_, err := Connect(context.Background(), testConfig(f))
	if !errors.Is(err, ErrForeignURI) {
		t.Errorf("Connect redirected elsewhere: %v, want ErrForeignURI", err)
	}
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/redfish/v1/Systems":
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
			return true
		case "/redfish/v1/Managers/old":
			http.Redirect(w, r, "/redfish/v1/Managers/bmc", http.StatusMovedPermanently)
			return true
		case "/redfish/v1/Managers":
			writeJSON(w, 200, map[string]any{"Members": []any{link("/redfish/v1/Managers/old")}})
			return true
		}
		return false
	}
	c := connect(t, f)
	if _, err := c.Inventory(context.Background()); !errors.Is(err, ErrForeignURI) {
		t.Errorf("Inventory redirected elsewhere: %v, want ErrForeignURI", err)
	}
	if f.hit("/redfish/v1/Managers/bmc") != 1 {
		t.Errorf("the redirect within the BMC was not followed")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestHostileForeignMember(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/redfish/v1/UpdateService/FirmwareInventory" {
			writeJSON(w, 200, map[string]any{"Members": []any{link("https://198.18.0.1/redfish/v1/x"), link("//evil.example/y")}})
			return true
		}
		return false
	}
	c := connect(t, f)
	if _, err := c.Inventory(context.Background()); !errors.Is(err, ErrForeignURI) {
		t.Errorf("Inventory: %v, want ErrForeignURI", err)
	}
}

func TestHostileNoToken(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			return true
		}
		return false
	}
	if _, err := Connect(context.Background(), testConfig(f)); err == nil || !strings.Contains(err.Error(), "X-Auth-Token") {
		t.Errorf("Connect: %v, want an error about the missing token", err)
	}
}

func TestHostileHugeHeaders(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		for i := range 200 {
			w.Header().Set("X-Junk-"+strings.Repeat("j", i), strings.Repeat("x", 1000))
		}
		w.WriteHeader(200)
		return true
	}
	if _, err := Connect(context.Background(), testConfig(f)); err == nil {
		t.Error("Connect accepted 200 kB of headers")
	}
}

func TestHostileTrickle(t *testing.T) {
	f := newFake(t, "dmtf")
	stop := make(chan struct{})
	defer close(stop)
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/redfish/v1/Managers" {
			return false
		}
		w.Write([]byte(`{"Members": [`))
		for {
			w.(http.Flusher).Flush()
			select {
			case <-stop:
				return true
			case <-r.Context().Done():
				return true
			case <-time.After(50 * time.Millisecond):
				w.Write([]byte(" "))
			}
		}
	}
	c := connect(t, f, func(cfg *Config) { cfg.RequestTimeout = 400 * time.Millisecond })
	start := time.Now()
	_, err := c.Inventory(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Errorf("Inventory: %v, want *UnreachableError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a trickling body held Inventory %s", d)
	}
}

func TestHostileOddTask(t *testing.T) {
	f := newFake(t, "dmtf")
	var polls atomic.Int32
	huge := make([]any, 20000)
	for i := range huge {
		huge[i] = map[string]any{"MessageId": "X.1", "Message": strings.Repeat("\x1b[31m", 3) + "m" + string(rune('a'+i%26))}
	}
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/redfish/v1/TaskService/Tasks/0" {
			return false
		}
		switch polls.Add(1) {
		case 1:
			writeJSON(w, 200, map[string]any{"TaskState": "Running", "PercentComplete": "50", "Messages": "nope", "TaskStatus": []int{1}})
		case 2:
			w.Write([]byte(`[1, 2, 3]`))
		case 3:
			writeJSON(w, 202, map[string]any{"TaskState": "Running", "PercentComplete": 1e300, "Messages": huge})
		case 4:
			w.Write([]byte(`<html>busy</html>`))
		case 5:
			writeJSON(w, 200, map[string]any{"TaskState": "Running", "Oem": "x", "Messages": []any{nil, 3, "s", map[string]any{"Message": 7}}})
		case 6:
			w.Write([]byte(`{"TaskState": "Running", "Messages": [` + strings.Repeat("[", 20000) + `]}`))
		default:
			writeJSON(w, 200, map[string]any{"TaskState": "Completed", "PercentComplete": 100})
		}
		return true
	}
	c := connect(t, f)
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := c.Wait(context.Background(), job, time.Second, rec.add); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if polls.Load() != 7 {
		t.Errorf("%d polls, want 7", polls.Load())
	}
	if got := rec.all[0].Percent; got != 50 {
		t.Errorf("percent %d, want 50 from the string \"50\"", got)
	}
	msgs := rec.messages()
	if len(msgs) > 4*maxMessages {
		t.Errorf("%d messages reported: unbounded", len(msgs))
	}
	for _, m := range msgs {
		if strings.ContainsRune(m, 0x1b) {
			t.Errorf("message with an escape character: %q", m)
		}
	}
	for _, p := range rec.all {
		if p.Percent > 100 || p.Percent < -1 {
			t.Errorf("percent %d", p.Percent)
		}
	}
}

func TestSessionExpiredDuringWait(t *testing.T) {
	f := newFake(t, "dell")
	f.flashTime = 400 * time.Millisecond
	c := connect(t, f)
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { // the BMC times the session out
		f.mu.Lock()
		f.sessions = map[string]string{}
		f.mu.Unlock()
	})
	if err := c.Wait(context.Background(), job, time.Second, nil); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	f.mu.Lock()
	created := f.created
	f.mu.Unlock()
	if created != 2 {
		t.Errorf("%d logins, want 2", created)
	}
}

func TestForbiddenTaskNoRelogin(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/redfish/v1/TaskService/Tasks/0" {
			writeJSON(w, 401, map[string]any{"error": map[string]any{"message": "Insufficient privilege"}})
			return true
		}
		return false
	}
	c := connect(t, f)
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Wait(context.Background(), job, time.Second, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 || !contains(se.Messages, "Insufficient privilege") {
		t.Errorf("Wait: %v, want the 401 with the BMC's message", err)
	}
	f.mu.Lock()
	created := f.created
	f.mu.Unlock()
	if created != 1 {
		t.Errorf("%d logins: a 401 on a live session must not log in again", created)
	}
}

func TestHPEStaleComplete(t *testing.T) {
	f := newFake(t, "hpe")
	f.hpeStale = true
	f.flashTime = 600 * time.Millisecond
	c := connect(t, f)
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := c.Wait(context.Background(), job, time.Second, rec.add); err != nil {
		t.Fatal(err)
	}
	if !contains(rec.states(), "Flashing") {
		t.Errorf("states %q: the previous update's Complete was taken for this one's", rec.states())
	}
}

func TestNoTask(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate" {
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		return false
	}
	c := connect(t, f)
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), job, time.Second, nil); !errors.Is(err, ErrOutcomeUnknown) {
		t.Errorf("Wait: %v, want ErrOutcomeUnknown", err)
	}
}

func TestRefusedUpdate(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate" {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"code": "Base.1.8.GeneralError", "message": "A general error has occurred.",
				"@Message.ExtendedInfo": []any{map[string]any{"MessageId": "Base.1.8.ActionParameterUnknown", "Message": "The action SimpleUpdate was submitted with the invalid parameter Foo."}}}})
			return true
		}
		return false
	}
	c := connect(t, f)
	_, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 400 || len(se.Messages) != 2 {
		t.Errorf("SimpleUpdate: %v, want a 400 with the BMC's two messages", err)
	}
}

func TestJunkTask(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/redfish/v1/TaskService/Tasks/0":
			w.Write([]byte("<html>oops</html>"))
			return true
		}
		return false
	}
	c := connect(t, f, func(cfg *Config) { cfg.Grace = 200 * time.Millisecond })
	job, err := c.SimpleUpdate(context.Background(), "https://127.0.0.1/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), job, time.Second, nil); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("Wait: %v, want an error about the body", err)
	}
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/redfish/v1/TaskService/Tasks/0" {
			w.Write([]byte(`{"TaskState": 5}`))
			return true
		}
		return false
	}
	if err := c.Wait(context.Background(), job, time.Second, nil); !errors.Is(err, ErrOutcomeUnknown) {
		t.Errorf("Wait: %v, want ErrOutcomeUnknown for a TaskState that is not a string", err)
	}
}
