package redfish

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The fuzz targets cover every parser of what a BMC sends that this package
// writes by hand. Run one with, e.g., go test -fuzz=FuzzParseTask ./redfish/.

var fuzzEndpoint = &url.URL{Scheme: "https", Host: "[fd42:5e::10]:8443"}

func fuzzResolve(ref string) (string, error) { return resolveRef(fuzzEndpoint, serviceRoot, ref) }

// printable checks a string from the BMC was cleaned.
func printable(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q: invalid UTF-8", what, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			t.Fatalf("%s %q: control character", what, s)
		}
	}
	if utf8.RuneCountInString(s) > 2*maxMessageLen+8 {
		t.Fatalf("%s: %d runes", what, utf8.RuneCountInString(s))
	}
}

var taskSeeds = []string{
	`{"@odata.id":"/redfish/v1/TaskService/Tasks/0","TaskState":"Running","PercentComplete":40,"Messages":[{"MessageId":"TaskEvent.1.0.TaskStarted","Message":"started"}]}`,
	`{"TaskState":"Completed","TaskStatus":"Critical","Messages":[{"Message":"bad"}]}`,
	`{"Id":"JID_1","JobState":"Failed","Message":"Unable to verify","MessageId":"RED063","PercentComplete":"100"}`,
	`{"TaskState":"Running","Oem":{"Dell":{"JobState":"Downloading","PercentComplete":12.5,"Message":"x"}}}`,
	`{"TaskState":5,"PercentComplete":-3,"Messages":"x"}`,
	`[1,2]`, `null`, `{}`, `{"Messages":[null,1,"a",{"Message":"\u001b[2J"}]}`,
}

func FuzzParseTask(f *testing.F) {
	for _, s := range taskSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := parseTask(b)
		if err != nil {
			return
		}
		if tk.percent < -1 || tk.percent > 100 {
			t.Fatalf("percent %d", tk.percent)
		}
		if len(tk.msgs) > maxMessages {
			t.Fatalf("%d messages", len(tk.msgs))
		}
		for _, m := range tk.msgs {
			printable(t, "message", m.String())
		}
		printable(t, "state", tk.state)
		switch o := tk.outcome(); o {
		case running, succeeded, failed, stateless:
			if (o == stateless) != (tk.state == "") {
				t.Fatalf("outcome %d for state %q", o, tk.state)
			}
		default:
			t.Fatalf("outcome %d", o)
		}
	})
}

func FuzzParseHPE(f *testing.F) {
	f.Add([]byte(`{"Oem":{"Hpe":{"State":"Flashing","FlashProgressPercent":40,"Result":{"MessageId":"iLO.2.14.Success","MessageArgs":["a"]}}}}`))
	f.Add([]byte(`{"Oem":{"Hpe":{"State":"Error","ProgressPercent":"7","Result":{"MessageId":7}}}}`))
	f.Add([]byte(`{"Oem":{"Hpe":null}}`))
	f.Add([]byte(`{"Oem":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHPE(b)
		if err != nil {
			return
		}
		if h.percent < -1 || h.percent > 100 {
			t.Fatalf("percent %d", h.percent)
		}
		printable(t, "state", h.state)
		printable(t, "result", h.result.String())
		// The state machine must classify it without panicking.
		w := &waiter{c: &Client{cfg: Config{}.withDefaults()}, job: &Job{HPE: true}}
		w.hpeObservation(h)
	})
}

func FuzzParseUpdateService(f *testing.F) {
	f.Add([]byte(`{"Actions":{"#UpdateService.SimpleUpdate":{"target":"/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate","TransferProtocol@Redfish.AllowableValues":["https","HTTP",3]}},"MultipartHttpPushUri":"/redfish/v1/UpdateService/upload","HttpPushUri":"push","FirmwareInventory":{"@odata.id":"/redfish/v1/UpdateService/FirmwareInventory"},"Oem":{"Hpe":{"State":"Idle"}}}`))
	f.Add([]byte(`{"Actions":{"#UpdateService.SimpleUpdate":{"target":"https://evil/x"}}}`))
	f.Add([]byte(`{"HttpPushUri":7,"Actions":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		us, err := parseUpdateService(b, fuzzResolve)
		if err != nil {
			return
		}
		for _, p := range []string{us.simpleUpdate, us.actionInfo, us.firmwareInventory, us.caps.MultipartHTTPPushURI, us.caps.HTTPPushURI} {
			if p != "" && !strings.HasPrefix(p, "/") {
				t.Fatalf("URI %q not a path", p)
			}
		}
		if len(us.caps.TransferProtocols) > maxProtocols {
			t.Fatalf("%d protocols", len(us.caps.TransferProtocols))
		}
		for _, p := range us.caps.TransferProtocols {
			printable(t, "protocol", p)
			if p != strings.ToUpper(p) {
				t.Fatalf("protocol %q not upper case", p)
			}
		}
		if us.caps.SimpleUpdate != (us.simpleUpdate != "") {
			t.Fatal("SimpleUpdate without a target")
		}
		actionInfoProtocols(b)
	})
}

func FuzzParseRoot(f *testing.F) {
	f.Add([]byte(`{"@odata.id":"/redfish/v1/","RedfishVersion":"1.6.0","Vendor":"Dell","Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}},"Managers":{"@odata.id":"/redfish/v1/Managers"}}`))
	f.Add([]byte(`{"@odata.type":"#ServiceRoot.v1_5_0.ServiceRoot","Oem":{"Hpe":{},"Acme":1},"Systems":{"@odata.id":"//evil/x"}}`))
	f.Add([]byte(`<html></html>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRoot(b, fuzzResolve)
		if err != nil {
			return
		}
		printable(t, "vendor", r.vendor)
		printable(t, "version", r.version)
		for _, p := range []string{r.sessions, r.managers, r.systems, r.updateService} {
			if p != "" && !strings.HasPrefix(p, "/") {
				t.Fatalf("link %q not a path", p)
			}
		}
		if r.sessions == "" {
			t.Fatal("no sessions URI")
		}
	})
}

func FuzzParseCollection(f *testing.F) {
	f.Add([]byte(`{"Members":[{"@odata.id":"/redfish/v1/Managers/1"},{"@odata.id":"2"}],"Members@odata.nextLink":"/redfish/v1/Managers?$skip=2"}`))
	f.Add([]byte(`{"Members":[{"@odata.id":"https://[fd42:5e::10]:8443/redfish/v1/x"},{"@odata.id":"https://[fd42:5e::11]:8443/y"}]}`))
	f.Add([]byte(`{"Members":{"a":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCollection(b, fuzzResolve)
		if err != nil {
			return
		}
		if len(c.members) > maxMembers {
			t.Fatalf("%d members", len(c.members))
		}
		for _, m := range append(c.members, c.next) {
			if m != "" && !strings.HasPrefix(m, "/") {
				t.Fatalf("member %q not a path", m)
			}
		}
	})
}

func FuzzResolveRef(f *testing.F) {
	for _, s := range []string{
		"/redfish/v1/TaskService/Tasks/JID_1", "Tasks/1/Monitor", "../x", "https://[fd42:5e::10]:8443/redfish/v1/y?a=b#f",
		"https://[FD42:5E::10]:8443/z", "https://[fd42:5e::10]/z", "http://[fd42:5e::10]:8443/z", "//evil.example/x",
		"https://user@[fd42:5e::10]:8443/z", "https://evil.example/x", "\\\\evil\\x", "/a\x00b", "%zz", "?q=1", "https:x",
		"https://[fd42:5e::10]:8443@evil/", "/redfish/v1/%2e%2e/%2e%2e/x", " /sp ace ",
	} {
		f.Add("/redfish/v1/TaskService/", s)
	}
	f.Fuzz(func(t *testing.T, base, ref string) {
		p, err := resolveRef(fuzzEndpoint, base, ref)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("%q → %q: not a path", ref, p)
		}
		// As the client sends it: the endpoint, then the path.
		u, err := url.Parse(fuzzEndpoint.String() + p)
		if err != nil {
			t.Fatalf("%q → %q: the request URL does not parse: %v", ref, p, err)
		}
		if !originOf(fuzzEndpoint).match(u) {
			t.Fatalf("%q → %q: leaves the endpoint for %s", ref, p, u.Host)
		}
		// And as gofish sends it.
		if u, err := url.Parse(fuzzEndpoint.String() + p); err != nil || u.Host != fuzzEndpoint.Host {
			t.Fatalf("%q → %q: leaves the endpoint", ref, p)
		}
	})
}

func FuzzJobID(f *testing.F) {
	for _, s := range []string{"/redfish/v1/TaskService/Tasks/JID_123", "/redfish/v1/TaskService/Tasks/5/Monitor", "/x/%2F..", "/", "", "/a/..", "/a/b?c#d", "/a/b%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		id := jobID(uri)
		if id == "" {
			return
		}
		if id == "." || id == ".." || strings.ContainsAny(id, "/?#%\\ ") || len(id) > 128 {
			t.Fatalf("%q → unsafe id %q", uri, id)
		}
		if url.PathEscape(id) != id {
			t.Fatalf("%q → id %q needs escaping", uri, id)
		}
	})
}

func FuzzErrorMessages(f *testing.F) {
	f.Add([]byte(`{"error":{"code":"Base.1.8.GeneralError","message":"A general error","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.PropertyUnknown","Message":"x"}]}}`))
	f.Add([]byte(`{"@Message.ExtendedInfo":[{"MessageId":"iLO.2.14.Success"}]}`))
	f.Add([]byte("plain text \x1b[31m error"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms := errorMessages(b)
		if len(ms) > maxMessages {
			t.Fatalf("%d messages", len(ms))
		}
		for _, m := range ms {
			printable(t, "message", m)
		}
	})
}

func FuzzSessionBody(f *testing.F) {
	f.Add("admin", []byte(`pa"ss\word`))
	f.Add("root", []byte("\x00\x1f\x7f\u2028é"))
	f.Fuzz(func(t *testing.T, user string, password []byte) {
		b := sessionBody(user, password)
		var got struct{ UserName, Password string }
		if err := json.Unmarshal(b, &got); err != nil {
			if utf8.Valid(password) && utf8.ValidString(user) {
				t.Fatalf("body %q: %v", b, err)
			}
			return
		}
		if utf8.Valid(password) && got.Password != string(password) {
			t.Fatalf("password %q came back as %q", password, got.Password)
		}
	})
}

func FuzzMultipartFrame(f *testing.F) {
	f.Add("fw.bin", "/redfish/v1/UpdateService/FirmwareInventory/BMC", []byte("image"))
	f.Add("../../\"evil\"\r\nX: y", "", []byte{})
	f.Add("C:\\depot\\fw.exe", "a\"b", []byte("\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, name, target string, file []byte) {
		var targets []string
		if target != "" {
			targets = []string{target}
		}
		upParams := map[string]any{"@Redfish.OperationApplyTime": "Immediate"}
		if len(targets) > 0 {
			upParams["Targets"] = targets
		}
		js, _ := json.Marshal(upParams)
		head, tail, ctype, err := multipartFrame([]formField{{name: "UpdateParameters", ctype: "application/json", value: js}}, "UpdateFile", name)
		if err != nil {
			t.Fatal(err)
		}
		_, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(file, []byte(params["boundary"])) {
			return // a random 128-bit boundary in the image: not in this life
		}
		body := io.MultiReader(bytes.NewReader(head), bytes.NewReader(file), bytes.NewReader(tail))
		mr := multipart.NewReader(body, params["boundary"])
		var names []string
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("part: %v", err)
			}
			b, _ := io.ReadAll(p)
			names = append(names, p.FormName())
			switch p.FormName() {
			case "UpdateParameters":
				var up struct {
					Targets []string
					Apply   string `json:"@Redfish.OperationApplyTime"`
				}
				if err := json.Unmarshal(b, &up); err != nil || up.Apply != "Immediate" || len(up.Targets) != len(targets) {
					t.Fatalf("UpdateParameters %s: %v", b, err)
				}
			case "UpdateFile":
				if !bytes.Equal(b, file) {
					t.Fatalf("file of %d bytes came back as %d", len(file), len(b))
				}
				if fn := p.FileName(); fn == "" || strings.ContainsAny(fn, "/\\\"\r\n") {
					t.Fatalf("filename %q", fn)
				}
			}
		}
		if len(names) != 2 || names[0] != "UpdateParameters" || names[1] != "UpdateFile" {
			t.Fatalf("parts %q", names)
		}
	})
}
