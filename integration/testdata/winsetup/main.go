//go:build windows

// Command winsetup is a Windows installer for the Windows-node tests: run
// silently (/S) it records its version where a real installer would (a
// registry value, HKLM\SOFTWARE\fleetup-test\<name>\Version, and a file
// under C:\fleetup-test\<name>), and exits 0, or 3010 with /reboot.
// /sleep N waits N seconds first (a long install to cancel in).
//
//	winsetup.exe /S /name NAME /version V [/sleep N] [/reboot]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows/registry"
)

func main() {
	fs := flag.NewFlagSet("winsetup", flag.ContinueOnError)
	silent := fs.Bool("S", false, "silent")
	name := fs.String("name", "app", "what is installed")
	version := fs.String("version", "", "the version installed")
	sleep := fs.Int("sleep", 0, "seconds to wait first")
	reboot := fs.Bool("reboot", false, "exit 3010: installed, a reboot needed")
	if err := fs.Parse(normalize(os.Args[1:])); err != nil || !*silent || *version == "" {
		fmt.Fprintln(os.Stderr, "usage: winsetup /S /name NAME /version V [/sleep N] [/reboot]")
		os.Exit(1603)
	}
	dir := filepath.Join(`C:\fleetup-test`, *name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "started"), []byte(time.Now().String()), 0o644); err != nil {
		fail(err)
	}
	time.Sleep(time.Duration(*sleep) * time.Second)
	k, _, err := registry.CreateKey(registry.LOCAL_MACHINE, `SOFTWARE\fleetup-test\`+*name, registry.SET_VALUE)
	if err != nil {
		fail(err)
	}
	defer k.Close()
	if err := k.SetStringValue("Version", *version); err != nil {
		fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte(*version), 0o644); err != nil {
		fail(err)
	}
	if *reboot {
		os.Exit(3010)
	}
}

// normalize turns /S and /name into -S and -name.
func normalize(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 1 && a[0] == '/' {
			a = "-" + a[1:]
		}
		out[i] = a
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "winsetup:", err)
	os.Exit(1603)
}
