//go:build !windows

package inventory

func defaultCollectors(opts Options) []Collector {
	return []Collector{
		&System{OSRelease: opts.OSRelease},
		&Tools{},
		&Dpkg{AdminDir: opts.DpkgAdminDir},
		&RPM{DBPath: opts.RPMDBPath},
		&Fwupd{Plugins: opts.FwupdPlugins},
	}
}
