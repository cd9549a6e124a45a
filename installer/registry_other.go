//go:build !windows

package installer

func platformInstallers(cfg Config) []Installer {
	return []Installer{NewFwupd(cfg), NewDeb(cfg), NewRPM(cfg), NewScript(cfg)}
}
