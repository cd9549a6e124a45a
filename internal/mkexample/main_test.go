package main

import (
	"bytes"
	"os"
	"testing"
)

// TestCommittedCab checks that the committed example cabinet is what
// mkexample generates; run `go generate ./internal/mkexample` after
// changing either.
func TestCommittedCab(t *testing.T) {
	want, err := Cab()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../examples/baseline/fakedevice-1.2.5.cab")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("examples/baseline/fakedevice-1.2.5.cab differs from mkexample's output; run go generate ./internal/mkexample")
	}
}
