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

// TranslateHPSUMArgs rewrites HP SUM's port options in args into fleetup's
// flags, so that existing scripts keep working: "/port 80" becomes
// "--port 80", likewise "/ssl_port", "/ftp_port" and "/open_firewall"
// (names in any case; "/port=80" becomes "--port=80"). Every other word is
// left alone: paths such as "/tmp/x", the word after an option that takes
// a value (so "/port /port" is "--port /port"), and everything after "--".
// A flag's value that is itself spelled like an HP SUM option must be
// written joined ("--config=/port").
func TranslateHPSUMArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		w := out[i]
		if w == "--" {
			break
		}
		if len(w) < 2 || w[0] != '/' {
			continue
		}
		name, value, hasValue := strings.Cut(w[1:], "=")
		o, ok := hpsumOptions[strings.ToLower(name)]
		if !ok {
			continue
		}
		if hasValue {
			out[i] = o.flag + "=" + value
			continue
		}
		out[i] = o.flag
		if o.value {
			i++ // the option's value stays as it is
		}
	}
	return out
}
