// Command mkexample writes the firmware cabinet of fleetup's example
// baseline (examples/baseline): version 1.2.5 of dev.fleetup.example.fakedevice
// for fwupd's test device. Its output is deterministic: a fixed payload and
// date, and cabfile's writer, so regenerating gives the same bytes.
//
//	go run ./internal/mkexample -o examples/baseline/fakedevice-1.2.5.cab
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/fleetup/fleetup/internal/testbaseline"
)

//go:generate go run . -o ../../examples/baseline/fakedevice-1.2.5.cab

// Cab returns the example cabinet's bytes.
func Cab() ([]byte, error) {
	payload := bytes.Repeat([]byte("fleetup example firmware 1.2.5\n"), 8)
	return testbaseline.FirmwareCab(testbaseline.Firmware{
		ID:      "dev.fleetup.example.fakedevice",
		Name:    "fleetup example firmware for fwupd's fake webcam",
		Version: "1.2.5",
		GUID:    testbaseline.FakeDeviceGUID,
		Payload: payload,
		Date:    "2025-01-01",
		Base:    "fakedevice-1.2.5",
	})
}

func main() {
	out := flag.String("o", "examples/baseline/fakedevice-1.2.5.cab", "output file")
	flag.Parse()
	b, err := Cab()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkexample:", err)
		os.Exit(1)
	}
}
