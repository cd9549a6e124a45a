package redfish

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestResolveRef(t *testing.T) {
	ep := &url.URL{Scheme: "https", Host: "[fd42:5e::10]"}
	tests := []struct {
		name, base, ref, want string
		foreign               bool
	}{
		{"absolute path", "/redfish/v1/UpdateService", "/redfish/v1/TaskService/Tasks/1", "/redfish/v1/TaskService/Tasks/1", false},
		{"relative", "/redfish/v1/UpdateService/Actions/SimpleUpdate", "../Tasks/1", "/redfish/v1/UpdateService/Tasks/1", false},
		{"relative to a directory", "/redfish/v1/TaskService/", "Tasks/1", "/redfish/v1/TaskService/Tasks/1", false},
		{"same origin, explicit default port, upper case", "/", "https://[FD42:5E::10]:443/redfish/v1/x?a=1#frag", "/redfish/v1/x?a=1", false},
		{"dot segments", "/", "/redfish/v1/a/../../../../etc", "/etc", false},
		{"other port", "/", "https://[fd42:5e::10]:8443/x", "", true},
		{"other host", "/", "https://198.18.0.9/x", "", true},
		{"plain http", "/", "http://[fd42:5e::10]/x", "", true},
		{"protocol-relative", "/", "//evil.example/x", "", true},
		{"user information", "/", "https://u:p@[fd42:5e::10]/x", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveRef(ep, tt.base, tt.ref)
			if tt.foreign {
				if !errors.Is(err, ErrForeignURI) {
					t.Errorf("resolveRef(%q) = %q, %v; want ErrForeignURI", tt.ref, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("resolveRef(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "/a\x00b", "/a\nb", string(make([]byte, maxRef+1))} {
		if got, err := resolveRef(ep, "/", bad); err == nil {
			t.Errorf("resolveRef(%q) = %q, want an error", bad, got)
		}
	}
}

func TestJobID(t *testing.T) {
	for uri, want := range map[string]string{
		"/redfish/v1/TaskService/Tasks/JID_123":                      "JID_123",
		"/redfish/v1/TaskService/Tasks/5/Monitor":                    "5",
		"/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/JID_9?x=1":       "JID_9",
		"/redfish/v1/TaskService/Tasks/7/":                           "7",
		"/redfish/v1/TaskService/Tasks/..":                           "",
		"/redfish/v1/TaskService/Tasks/a%2Fb":                        "",
		"/redfish/v1/TaskService/Tasks/" + string(make([]byte, 200)): "",
	} {
		if got := jobID(uri); got != want {
			t.Errorf("jobID(%q) = %q, want %q", uri, got, want)
		}
	}
}

func TestIPv6(t *testing.T) {
	f := newFakeOn(t, "dell", "[::1]:0")
	if f.url() != "https://"+f.addr || f.addr[0] != '[' {
		t.Fatalf("fake at %s", f.url())
	}
	c := connect(t, f)
	if got := c.LocalAddr().String(); got != "::1" {
		t.Errorf("LocalAddr = %s", got)
	}
	f.flashTime, f.resetAt = 300*time.Millisecond, 0.5
	job, err := c.SimpleUpdate(context.Background(), "https://[::1]:63002/fw.bin", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), job, 5*time.Second, nil); err != nil {
		t.Fatalf("Wait through a reset over IPv6: %v", err)
	}
}
