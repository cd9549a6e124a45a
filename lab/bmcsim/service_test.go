package bmcsim

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
)

// TestServiceRoot: the public resources, and each flavor's identity.
func TestServiceRoot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flavor                        Flavor
		vendor, managerPath, model    string
		firmware                      string
		managerFirmwareID, systemPath string
	}{
		{ILO, "HPE", "/redfish/v1/Managers/1/", "iLO 5", "iLO 5 v2.72", "1", "/redfish/v1/Systems/1/"},
		{IDRAC, "Dell", "/redfish/v1/Managers/iDRAC.Embedded.1", "16G Monolithic", "7.00.00.00", "Installed-25227-7.00.00.00", "/redfish/v1/Systems/System.Embedded.1"},
		{OpenBMC, "OpenBMC", "/redfish/v1/Managers/bmc", "OpenBmc", "2.14.0-dev", "bmc_active", "/redfish/v1/Systems/system"},
	} {
		t.Run(string(tc.flavor), func(t *testing.T) {
			t.Parallel()
			b := startTest(t, testOptions(t, tc.flavor))
			for _, p := range []string{"/redfish", "/redfish/v1", "/redfish/v1/", "/redfish/v1/odata", "/redfish/v1/$metadata"} {
				if st, _, _ := do(t, b, http.MethodGet, p, nil, nil); st != http.StatusOK {
					t.Errorf("GET %s without credentials: %d", p, st)
				}
			}
			_, _, root := do(t, b, http.MethodGet, "/redfish/v1/", nil, nil)
			for _, k := range []string{"RedfishVersion", "UUID", "Product", "JsonSchemas", "Registries", "SessionService",
				"AccountService", "Managers", "Systems", "Chassis", "UpdateService", "Tasks"} {
				if root[k] == nil {
					t.Errorf("service root lacks %s", k)
				}
			}
			if str(root, "Vendor") != tc.vendor || str(root, "Links", "Sessions", "@odata.id") == "" {
				t.Errorf("service root %v", root)
			}
			if tc.flavor == ILO && str(root, "Oem", "Hpe", "Manager") == "" {
				m, _ := path(root, "Oem", "Hpe", "Manager").([]any)
				if len(m) != 1 || str(m[0].(map[string]any), "ManagerType") != "iLO 5" {
					t.Errorf("Oem.Hpe.Manager %v", path(root, "Oem", "Hpe", "Manager"))
				}
			}
			if st, _, o := do(t, b, http.MethodGet, "/redfish/v1/Systems", nil, nil); st != http.StatusUnauthorized || o["error"] == nil {
				t.Errorf("GET Systems without credentials: %d %v", st, o)
			}
			c := connect(t, b)
			defer c.Logout()
			m := mustGet(t, c, tc.managerPath)
			if str(m, "Model") != tc.model || str(m, "FirmwareVersion") != tc.firmware || str(m, "@odata.id") != tc.managerPath {
				t.Errorf("manager %v", m)
			}
			fw := mustGet(t, c, "/redfish/v1/UpdateService/FirmwareInventory/"+tc.managerFirmwareID)
			if fw["Updateable"] != true || str(fw, "Version") == "" {
				t.Errorf("manager firmware %v", fw)
			}
			s := mustGet(t, c, tc.systemPath)
			if s["Boot"] == nil || str(s, "PowerState") != "On" || str(s, "BiosVersion") == "" {
				t.Errorf("system %v", s)
			}
			if _, st, _ := getJSON(c, "/redfish/v1/NoSuchThing"); st != http.StatusNotFound {
				t.Errorf("unknown path: %d", st)
			}
			sess, _ := c.GetSession()
			if st, _, _ := do(t, b, http.MethodPut, "/redfish/v1/Systems", map[string]string{"X-Auth-Token": sess.Token}, nil); st != http.StatusMethodNotAllowed {
				t.Errorf("PUT Systems: %d", st)
			}
		})
	}
}

// TestSessions: session login and logout, basic auth, refusals.
func TestSessions(t *testing.T) {
	t.Parallel()
	for _, f := range Flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			b := startTest(t, testOptions(t, f))
			st, hdr, o := do(t, b, http.MethodPost, sessionsPath, map[string]string{"Content-Type": "application/json"},
				strings.NewReader(`{"UserName":"`+testUser+`","Password":"wrong"}`))
			if st != http.StatusUnauthorized || o["error"] == nil || hdr.Get("X-Auth-Token") != "" {
				t.Errorf("wrong password: %d %v", st, o)
			}
			st, _, _ = do(t, b, http.MethodPost, sessionsPath, nil, strings.NewReader(`{"UserName":`))
			if st != http.StatusBadRequest {
				t.Errorf("malformed login: %d", st)
			}
			c := connect(t, b)
			if n := b.OpenSessions(); n != 1 {
				t.Errorf("OpenSessions %d after login", n)
			}
			sess, err := c.GetSession()
			if err != nil || !strings.HasPrefix(sess.ID, sessionsPath+"/") {
				t.Errorf("session %+v %v", sess, err)
			}
			o = mustGet(t, c, sess.ID)
			if str(o, "UserName") != testUser || str(o, "Name") == "" {
				t.Errorf("session resource %v", o)
			}
			req, _ := http.NewRequest(http.MethodGet, b.URL()+"/redfish/v1/UpdateService/FirmwareInventory", nil)
			req.SetBasicAuth(testUser, testPass)
			if st := statusFor(t, req); st != http.StatusOK {
				t.Errorf("basic auth: %d", st)
			}
			c.Logout()
			if n := b.OpenSessions(); n != 0 {
				t.Errorf("OpenSessions %d after logout", n)
			}
			if st, _, _ := do(t, b, http.MethodGet, "/redfish/v1/Managers", map[string]string{"X-Auth-Token": sess.Token}, nil); st != http.StatusUnauthorized {
				t.Errorf("deleted session's token: %d", st)
			}
		})
	}
}

// TestRotateCert: the certificate and its fingerprint change.
func TestRotateCert(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, ILO))
	seen := func() string {
		conn, err := tlsDial(b)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return Fingerprint(conn.ConnectionState().PeerCertificates[0].Raw)
	}
	before := b.Fingerprint()
	if !strings.HasPrefix(before, "SHA256:") || seen() != before {
		t.Fatalf("fingerprint %q, presented %q", before, seen())
	}
	if err := b.RotateCert(); err != nil {
		t.Fatal(err)
	}
	after := b.Fingerprint()
	if after == before || seen() != after {
		t.Errorf("after rotation: %q (was %q), presented %q", after, before, seen())
	}
	if b.Certificate().IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("certificate for %v", b.Certificate().IPAddresses)
	}
	// The certificate verifies for the address it names.
	pool := newPool(b)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(b.URL(), "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Errorf("verified TLS: %v", err)
	} else {
		conn.Close()
	}
}

// TestExpand: $expand=. expands a collection's members, as ilorest wants.
func TestExpand(t *testing.T) {
	t.Parallel()
	b := startTest(t, testOptions(t, ILO))
	c, err := gofish.Connect(basicConfig(b))
	if err != nil {
		t.Fatal(err)
	}
	o := mustGet(t, c, "/redfish/v1/UpdateService/FirmwareInventory/?$expand=.")
	ms, _ := o["Members"].([]any)
	if len(ms) != 2 || str(ms[0].(map[string]any), "Version") != "2.72" {
		t.Errorf("expanded members %v", ms)
	}
}

// TestOptions: bad options are refused.
func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Flavor: "supermicro", User: "u", Password: "p"},
		{Flavor: ILO, Password: "p"},
		{Flavor: ILO, User: "u", Password: "p", Firmware: []Firmware{{ID: "1", Version: "1"}}},
		{Flavor: ILO, User: "u", Password: "p", Firmware: []Firmware{{ID: "1", Version: "1", Manager: true}, {ID: "1", Version: "2"}}},
	} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// TestSessionTimeout: a session unused for SessionTimeout ends.
func TestSessionTimeout(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, OpenBMC)
	opts.SessionTimeout = 300 * time.Millisecond
	b := startTest(t, opts)
	c := connect(t, b)
	o := mustGet(t, c, "/redfish/v1/SessionService")
	if o["SessionTimeout"] != float64(1) {
		t.Errorf("SessionTimeout %v, want 1 (300ms in whole seconds, rounded up)", o["SessionTimeout"])
	}
	// Used sessions live on.
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		mustGet(t, c, "/redfish/v1/Systems")
	}
	time.Sleep(400 * time.Millisecond)
	if _, st, _ := getJSON(c, "/redfish/v1/Systems"); st != http.StatusUnauthorized {
		t.Errorf("expired session: %d", st)
	}
	if n := b.OpenSessions(); n != 0 {
		t.Errorf("OpenSessions %d", n)
	}
}
