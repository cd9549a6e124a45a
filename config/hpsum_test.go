package config

import "testing"

func TestHPSUMOption(t *testing.T) {
	tests := []struct {
		name, flag string
		value, ok  bool
	}{
		{"port", "--port", true, true},
		{"SSL_Port", "--ssl-port", true, true},
		{"ftp_port", "--ftp-port", true, true},
		{"open_firewall", "--open-firewall", false, true},
		{"ports", "", false, false},
		{"dryrun", "", false, false},
	}
	for _, tt := range tests {
		flag, value, ok := HPSUMOption(tt.name)
		if flag != tt.flag || value != tt.value || ok != tt.ok {
			t.Errorf("HPSUMOption(%q) = %q, %v, %v; want %q, %v, %v", tt.name, flag, value, ok, tt.flag, tt.value, tt.ok)
		}
	}
}
