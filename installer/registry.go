package installer

import (
	"fmt"

	"github.com/fleetup/fleetup"
)

// ByKind returns the installers for every kind this platform's engine
// installs, built on cfg: fwupd, deb, rpm and script on Linux; msi, msu,
// exe and script (PowerShell, cmd) on Windows.
func ByKind(cfg Config) map[fleetup.Kind]Installer {
	m := map[fleetup.Kind]Installer{}
	for _, in := range platformInstallers(cfg) {
		if _, dup := m[in.Kind()]; dup {
			panic(fmt.Sprintf("installer: two installers for kind %q", in.Kind()))
		}
		m[in.Kind()] = in
	}
	return m
}
