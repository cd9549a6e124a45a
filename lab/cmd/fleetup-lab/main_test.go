package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/lab"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    lab.Options
		wantErr string
	}{
		{name: "plain", args: []string{"up", "3"}, want: lab.Options{Nodes: 3}},
		{name: "ipv6-only and dpkg", args: []string{"up", "3", "-6", "0,2", "-dpkg"}, want: lab.Options{Nodes: 3, IPv6Only: []int{0, 2}, Dpkg: true}},
		{name: "no command", args: nil, wantErr: "usage"},
		{name: "other command", args: []string{"down", "3"}, wantErr: "usage"},
		{name: "bad count", args: []string{"up", "many"}, wantErr: `node count "many"`},
		{name: "zero nodes", args: []string{"up", "0"}, wantErr: "Nodes 0"},
		{name: "bad position", args: []string{"up", "2", "-6", "x"}, wantErr: `position "x"`},
		{name: "position out of range", args: []string{"up", "2", "-6", "2"}, wantErr: "IPv6Only position 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}
