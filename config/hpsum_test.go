package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTranslateHPSUMArgs(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"the manual's example", []string{"/port", "80", "/ssl_port", "443"}, []string{"--port", "80", "--ssl-port", "443"}},
		{"ftp and open_firewall", []string{"/ftp_port", "21", "/open_firewall"}, []string{"--ftp-port", "21", "--open-firewall"}},
		{"any case", []string{"/PORT", "80", "/Open_Firewall"}, []string{"--port", "80", "--open-firewall"}},
		{"joined value", []string{"/port=80", "/ssl_port=443"}, []string{"--port=80", "--ssl-port=443"}},
		{"fleetup flags untouched", []string{"--baseline", "/srv/base", "--port", "80"}, []string{"--baseline", "/srv/base", "--port", "80"}},
		{"paths untouched", []string{"--config", "/tmp/x", "/tmp/port", "/"}, []string{"--config", "/tmp/x", "/tmp/port", "/"}},
		{"unknown slash options untouched", []string{"/s", "/dryrun", "/ports", "80"}, []string{"/s", "/dryrun", "/ports", "80"}},
		{"an option's value is never translated", []string{"/port", "/port"}, []string{"--port", "/port"}},
		{"open_firewall takes no value", []string{"/open_firewall", "/port", "80"}, []string{"--open-firewall", "--port", "80"}},
		{"nothing after --", []string{"/port", "80", "--", "/ssl_port", "443"}, []string{"--port", "80", "--", "/ssl_port", "443"}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]string(nil), tt.in...)
			got := TranslateHPSUMArgs(in)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.in, in, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("input changed (-before +after):\n%s", diff)
			}
		})
	}
}
