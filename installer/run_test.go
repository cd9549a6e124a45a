//go:build !windows

package installer

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/proc"
)

// TestStreamEscapedChild: a child that leaves the process group and keeps
// the output open must not turn a successful command into a failure.
func TestStreamEscapedChild(t *testing.T) {
	marker := "fleetup-installer-run-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	t.Cleanup(func() { _, _ = proc.KillMarked(marker, time.Second) })
	r := &proc.Runner{Marker: marker, WaitDelay: 200 * time.Millisecond}
	tests := []struct {
		name     string
		script   string
		wantCode int // -1: success
	}{
		{"success", "setsid sleep 30 & echo done", -1},
		{"failure", "setsid sleep 30 & echo done; exit 4", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := stream(context.Background(), r, &out, nil, "sh", "-c", tt.script)
			if tt.wantCode < 0 && err != nil {
				t.Fatalf("error: %v", err)
			}
			if tt.wantCode >= 0 && exitCode(err) != tt.wantCode {
				t.Fatalf("error %v, want exit status %d", err, tt.wantCode)
			}
			if !strings.Contains(out.String(), "done") || (tt.wantCode < 0 && !strings.Contains(out.String(), "still holds its output open")) {
				t.Errorf("output %q", out.String())
			}
		})
	}
}

func TestOutputLogTail(t *testing.T) {
	var log bytes.Buffer
	o := newOutputLog(&log)
	chunk := strings.Repeat("é", 1000) // 2000 bytes
	for i := 0; i < 10; i++ {
		o.Write([]byte(chunk))
	}
	tail := o.Tail()
	if len(tail) > OutputTail || len(tail) < OutputTail-3 || !strings.HasSuffix(log.String(), tail) || strings.ContainsRune(tail, '\uFFFD') {
		t.Errorf("tail of %d bytes, log %d bytes", len(tail), log.Len())
	}
}
