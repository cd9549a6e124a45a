package installer

import (
	"fmt"

	"github.com/fleetup/fleetup"
)

// ByKind returns the installers for every kind, built on cfg.
func ByKind(cfg Config) map[fleetup.Kind]Installer {
	m := map[fleetup.Kind]Installer{}
	for _, in := range []Installer{NewFwupd(cfg), NewDeb(cfg), NewRPM(cfg), NewScript(cfg)} {
		if _, dup := m[in.Kind()]; dup {
			panic(fmt.Sprintf("installer: two installers for kind %q", in.Kind()))
		}
		m[in.Kind()] = in
	}
	return m
}
