//go:build !windows

package installer

import (
	"testing"
	"time"
)

func TestParseHistoryVersion(t *testing.T) {
	out := []byte(`Loading…
{
  "Devices" : [
    {"Name":"Integrated Webcam","Created":1000,"UpdateState":2,"Releases":[{"AppstreamId":"a.fw","Version":"1.2.4"}]},
    {"Name":"Integrated Webcam","Created":2000,"UpdateState":2,"Releases":[{"AppstreamId":"a.fw","Version":"1.2.5"}]},
    {"Name":"Integrated Webcam","Created":3000,"UpdateState":3,"Releases":[{"AppstreamId":"a.fw","Version":"1.2.6"}]},
    {"Name":"Other","Created":3000,"UpdateState":2,"Releases":[{"AppstreamId":"b.fw","Version":"9.9"}]}
  ]
}`)
	tests := []struct {
		name  string
		id    string
		since int64
		want  string
	}{
		{"newest success", "a.fw", 0, "1.2.5"},
		{"failed install ignored", "a.fw", 2500, ""},
		{"too old", "a.fw", 2001, ""},
		{"other release", "b.fw", 0, "9.9"},
		{"unknown", "c.fw", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHistoryVersion(out, tt.id, time.Unix(tt.since, 0))
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ParseHistoryVersion([]byte("no json"), "a", time.Time{}); err == nil {
		t.Error("no error for output without JSON")
	}
}

func FuzzParseHistoryVersion(f *testing.F) {
	f.Add([]byte(`{"Devices":[{"Created":1,"UpdateState":2,"Releases":[{"AppstreamId":"a","Version":"1"}]}]}`), "a")
	f.Fuzz(func(t *testing.T, out []byte, id string) {
		_, _ = ParseHistoryVersion(out, id, time.Time{})
	})
}
