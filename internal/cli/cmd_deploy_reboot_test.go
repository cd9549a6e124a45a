package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
)

func TestParseRebootDelay(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "seconds, as HP SUM's /reboot_delay", in: "15", want: 15 * time.Second},
		{name: "a duration", in: "2m", want: 2 * time.Minute},
		{name: "the longest", in: "3600", want: time.Hour},
		{name: "too short", in: "14", wantErr: "between 15s and 1h0m0s"},
		{name: "too long", in: "3601s", wantErr: "between"},
		{name: "not a number", in: "soon", wantErr: "want seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRebootDelay(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseRebootDelay(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseRebootDelay(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRebootFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"delay too short", []string{"deploy", "--baseline", "../../examples/baseline", "--target", "h", "--reboot", "--reboot-delay", "5"}, "-reboot-delay: 5s: must be between 15s"},
		{"hpsum delay too long", []string{"deploy", "--baseline", "../../examples/baseline", "--target", "h", "/r", "/reboot_delay", "7200"}, "between 15s and 1h0m0s"},
		{"timeout not positive", []string{"deploy", "--baseline", "../../examples/baseline", "--target", "h", "--reboot", "--reboot-timeout", "0s"}, "--reboot-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := run(t, "", tt.args...)
			if code != ExitUsage || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, ExitUsage, tt.want)
			}
		})
	}
}

func TestRebootLine(t *testing.T) {
	tests := []struct {
		name string
		res  orchestrator.NodeResult
		want string
	}{
		{name: "rebooted", res: orchestrator.NodeResult{State: fleetup.StateComplete,
			Reboot: &orchestrator.RebootResult{Back: true, BootIDBefore: "a", BootIDAfter: "b", Duration: 42 * time.Second}},
			want: "rebooted: back in 42s with boot id b (was a)"},
		{name: "needs one", res: orchestrator.NodeResult{State: fleetup.StateRebootNeeded, Components: []fleetup.ComponentResult{
			{ComponentID: "kernel", RebootNeeded: true}, {ComponentID: "tool"}}},
			want: "not rebooted: a reboot completes kernel (fleetup reboots a node with --reboot)"},
		{name: "nothing to say", res: orchestrator.NodeResult{State: fleetup.StateComplete}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rebootLine(tt.res); got != tt.want {
				t.Errorf("rebootLine = %q, want %q", got, tt.want)
			}
		})
	}
}
