package installer

func platformInstallers(cfg Config) []Installer {
	return []Installer{NewMSI(cfg), NewMSU(cfg), NewExe(cfg), NewWinScript(cfg)}
}
