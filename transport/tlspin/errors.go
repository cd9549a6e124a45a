package tlspin

import (
	"fmt"
	"strings"
)

// UnknownCertError is the refusal of an endpoint that has no pinned
// certificate, when new ones are not accepted.
type UnknownCertError struct {
	Endpoint    string // host:port, normalised
	Fingerprint string // of the certificate it presented
	File        string // the pin file, where accepting would record it
}

func (e *UnknownCertError) Error() string {
	return fmt.Sprintf("tls to %s: certificate %s is not known: if it is the endpoint's, rerun with --accept-new-host-keys to trust it on this first contact and record it in %s",
		e.Endpoint, e.Fingerprint, e.File)
}

// ChangedCertError is the refusal of an endpoint that presented a
// certificate other than the one(s) pinned for it: someone may be between
// fleetup and the endpoint, or the endpoint has a new certificate.
type ChangedCertError struct {
	Endpoint    string // host:port, normalised
	Fingerprint string // of the certificate it presented
	File        string // the pin file
	Known       []string
}

func (e *ChangedCertError) Error() string {
	lines := "line"
	if len(e.Known) > 1 {
		lines = "lines"
	}
	return fmt.Sprintf("tls to %s: CERTIFICATE CHANGED: it is now %s, but %s pins %s: someone may be in the middle; if the change is expected (a new certificate), remove the %s %s from %s and accept the new one with --accept-new-host-keys",
		e.Endpoint, e.Fingerprint, e.File, strings.Join(e.Known, " or "), e.Endpoint, lines, e.File)
}
