package tlspin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// maxErrors caps how many bad lines of a pin file one error names.
const maxErrors = 10

// parse reads a pin file's contents: normalised endpoint → fingerprints in
// file order. name is the file's, for errors ("FILE:LINE: ..."). Any bad
// line is an error: the file is refused as a whole.
func parse(data []byte, name string) (map[string][]string, error) {
	pins := map[string][]string{}
	var errs []error
	bad := func(n int, format string, a ...any) {
		if len(errs) < maxErrors {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, a...)))
		} else if len(errs) == maxErrors {
			errs = append(errs, fmt.Errorf("%s: more bad lines not shown", name))
		}
	}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			bad(n, "want \"host:port SHA256:fingerprint\", got %d fields", len(fields))
			continue
		}
		ep, _, err := normalize(fields[0])
		if err != nil {
			bad(n, "%v", err)
			continue
		}
		fp, err := parseFingerprint(fields[1])
		if err != nil {
			bad(n, "%v", err)
			continue
		}
		if !slices.Contains(pins[ep], fp) {
			pins[ep] = append(pins[ep], fp)
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("%s: fix or remove the bad lines: no certificate is trusted while the file cannot be read", name))
		return nil, errors.Join(errs...)
	}
	return pins, nil
}

// parseFingerprint checks s is "SHA256:" and the unpadded base64 of 32
// bytes, in its one canonical spelling.
func parseFingerprint(s string) (string, error) {
	b64, ok := strings.CutPrefix(s, fingerprintPrefix)
	if !ok {
		return "", fmt.Errorf("fingerprint %.80q does not start with %q", s, fingerprintPrefix)
	}
	sum, err := base64.RawStdEncoding.Strict().DecodeString(b64)
	if err != nil || len(sum) != 32 {
		return "", fmt.Errorf("fingerprint %.80q is not SHA256: and 43 characters of unpadded base64", s)
	}
	return s, nil
}

// normalize returns endpoint ("host:port") as the file holds it, and its
// host: a host name in lower case without a trailing dot, an IP address in
// canonical form (IPv6 in brackets, with its zone), always with the port.
func normalize(endpoint string) (ep, host string, err error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", "", fmt.Errorf("endpoint %.80q is not host:port ([address]:port for IPv6)", endpoint)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || port[0] < '0' || port[0] > '9' {
		return "", "", fmt.Errorf("endpoint %.80q: port %.10q is not a number in 1-65535", endpoint, port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !validName(ip.Zone(), false) {
			return "", "", fmt.Errorf("endpoint %.80q: bad zone %q", endpoint, ip.Zone())
		}
		host = ip.String()
	} else {
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if !validName(host, true) {
			return "", "", fmt.Errorf("endpoint %.80q: %.80q is not an IP address or host name", endpoint, host)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), host, nil
}

// validName reports whether s is made of letters, digits, '-', '_' and
// '.' only (host names and zones), so that it cannot break a line of the
// file. A host name must not be empty; a zone may.
func validName(s string, host bool) bool {
	if host && s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// openFile opens the pin file with flag and checks it can be trusted: not
// a symbolic link, a regular file, and (checkPerm) not writable by others.
// A missing file is an error satisfying errors.Is(err, fs.ErrNotExist).
func openFile(path string, flag int) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is a symbolic link: refused, since whoever can change the link chooses the certificates trusted; replace it with the file it points to", path)
	}
	f, err := os.OpenFile(path, flag|noFollow, 0o600)
	if err != nil {
		return nil, err
	}
	if err := checkFile(path, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkFile checks that f, just opened at path, is a regular file that is
// still at path, and that its permissions are safe.
func checkFile(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): refused", path, fi.Mode().Type())
	}
	lfi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !os.SameFile(fi, lfi) {
		return fmt.Errorf("%s was replaced while it was opened: refused", path)
	}
	return checkPerm(path, fi)
}
