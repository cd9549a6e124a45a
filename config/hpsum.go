package config

import "strings"

// hpsumOptions are HP SUM's slash options for ports, by lower-case name,
// with the fleetup flag each becomes and whether it takes a value.
var hpsumOptions = map[string]struct {
	flag  string
	value bool
}{
	"port":          {"--port", true},
	"ssl_port":      {"--ssl-port", true},
	"ftp_port":      {"--ftp-port", true},
	"open_firewall": {"--open-firewall", false},
}

// HPSUMOption looks up one of HP SUM's port options by name (without the
// slash, any case): the fleetup flag it becomes and whether it takes a
// value.
func HPSUMOption(name string) (flag string, takesValue, ok bool) {
	o, ok := hpsumOptions[strings.ToLower(name)]
	return o.flag, o.value, ok
}
