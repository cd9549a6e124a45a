package bmcsim

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The request bodies a BMC parses by hand: image headers, multipart forms,
// SimpleUpdate and UpdateParameters JSON. None may panic, whatever comes.

func FuzzImageHeader(f *testing.F) {
	for _, s := range []string{
		"FLEETUP-BMCSIM-IMAGE target=iLO 5 version=2.78",
		"FLEETUP-BMCSIM-IMAGE target=BIOS version=1.2 version=3",
		"FLEETUP-BMCSIM-IMAGE target= version=1",
		"FLEETUP-BMCSIM-IMAGE target=x version=\x00",
		"MZ\x90\x00",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		h, err := parseImageHeader(line)
		if err != nil {
			return
		}
		if h.target == "" || h.version == "" || strings.Contains(h.target, " version=") {
			t.Fatalf("parsed %q into %+v", line, h)
		}
		img := Image(h.target, h.version, []byte("body"))
		h2, herr, n, terr := readImage(bytes.NewReader(img), nil)
		if herr != nil || terr != nil || h2 != h || n != int64(len(img)) {
			t.Fatalf("round trip of %+v: %+v %v %d %v", h, h2, herr, n, terr)
		}
	})
}

// formBody is a multipart body with the given boundary and parts
// (name, content) in order.
func formBody(boundary string, parts ...[2]string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + p[0] + "\"\r\n\r\n" + p[1] + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

func FuzzReadForm(f *testing.F) {
	img := string(Image("BIOS", "1.0", []byte("payload")))
	f.Add(formBody("XyZ", [2]string{"UpdateParameters", `{"Targets":[]}`}, [2]string{"UpdateFile", img}))
	f.Add(formBody("XyZ", [2]string{"UpdateFile", img}, [2]string{"UpdateFile", img}))
	f.Add(formBody("XyZ", [2]string{"sessionKey", "abc"}, [2]string{"parameters", `{"UpdateTarget":true}`}))
	f.Add("--XyZ\r\nContent-Disposition: form-data; name=\"UpdateFile\"\r\n\r\nFLEETUP-BMC")
	f.Add("--XyZ--")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := readForm(strings.NewReader(body), "XyZ", formSpec{file: "UpdateFile"})
		if form == nil {
			t.Fatal("nil form")
		}
		if err == nil && form.n > int64(len(body)) {
			t.Fatalf("read %d image bytes from a %d byte body", form.n, len(body))
		}
		if len(form.fields) > maxFormFields {
			t.Fatalf("%d fields", len(form.fields))
		}
	})
}

func FuzzSimpleUpdate(f *testing.F) {
	for _, s := range []string{
		`{"ImageURI":"http://198.18.1.1/fw.bin","TransferProtocol":"HTTP"}`,
		`{"ImageURI":"198.18.1.1/fw.bin","TransferProtocol":"HTTPS","Targets":["/redfish/v1/Managers/1"]}`,
		`{"ImageURI":"tftp://x/y"}`,
		`{"ImageURI":7}`,
		`{"ImageURI":"http://[::1]:80/a","Username":"u","Password":"p","@Redfish.OperationApplyTime":"OnReset"}`,
		`{"Targets":"x"}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range profiles {
			req, rerr := p.parseSimpleUpdate(data)
			if rerr != nil {
				if rerr.status != http.StatusBadRequest || rerr.msg.ID == "" {
					t.Fatalf("refusal %+v", rerr)
				}
				continue
			}
			if req.url == nil || (req.url.Scheme != "http" && req.url.Scheme != "https") || req.url.Host == "" {
				t.Fatalf("accepted %q as %v", data, req.url)
			}
			_ = redactedBody(data)
		}
	})
}

func FuzzUpdateParameters(f *testing.F) {
	for _, s := range []string{
		`{"Targets":[],"@Redfish.OperationApplyTime":"Immediate"}`,
		`{"Targets":["/redfish/v1/Managers/bmc"]}`,
		`{"Targets":["a","b"]}`,
		`{"@Redfish.OperationApplyTime":"Later"}`,
		`{"Targets":{}}`, `1`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		for _, p := range profiles {
			_, at, rerr := p.parseUpdateParameters(data, true)
			if rerr == nil && at != "Immediate" && at != "OnReset" {
				t.Fatalf("apply time %q from %q", at, data)
			}
		}
	})
}

// FuzzPush sends arbitrary pushes to live BMCs' update URIs.
func FuzzPush(f *testing.F) {
	img := string(Image("bios", "9.0", []byte("payload")))
	f.Add("application/octet-stream", img)
	f.Add("multipart/form-data; boundary=XyZ", formBody("XyZ", [2]string{"UpdateParameters", `{"Targets":["/redfish/v1/UpdateService/FirmwareInventory/bios_active"],"@Redfish.OperationApplyTime":"Immediate"}`}, [2]string{"UpdateFile", img}))
	f.Add("multipart/form-data; boundary=XyZ", formBody("XyZ", [2]string{"sessionKey", "x"}, [2]string{"parameters", `{"UpdateTarget":true}`}, [2]string{"file", img}))
	f.Add("multipart/form-data; boundary=", "--")
	f.Add("text/plain", "")
	var bmcs []*BMC
	for _, fl := range Flavors {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		opts := Options{Flavor: fl, User: testUser, Password: testPass, FlashTime: time.Millisecond, ResetTime: 10 * time.Millisecond}
		b, err := Start(opts, ln)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { b.Close() })
		bmcs = append(bmcs, b)
	}
	f.Fuzz(func(t *testing.T, contentType, body string) {
		for _, b := range bmcs {
			for _, p := range []string{b.prof.httpPushURI, b.prof.multipartURI, simplePath} {
				if p == "" {
					continue
				}
				req := httptest.NewRequest(http.MethodPost, p, strings.NewReader(body))
				req.Header.Set("Content-Type", contentType)
				req.SetBasicAuth(testUser, testPass)
				rec := httptest.NewRecorder()
				b.ServeHTTP(rec, req)
				if rec.Code == http.StatusInternalServerError {
					t.Fatalf("%s %s: 500: %s", b.Flavor(), p, rec.Body)
				}
				_, _ = io.Copy(io.Discard, rec.Body)
			}
		}
	})
}
