// Package version compares and validates version strings by the rules of
// the tool that will judge them on a node: dpkg for Debian packages, rpm for
// RPM packages, and fwupd for firmware.
//
// Compare and Validate take a format name. "dpkg" and "rpm" follow
// dpkg's verrevcmp and rpm's rpmvercmp exactly, epochs and revisions
// included. Every other name is one of fwupd's version formats ("plain",
// "number", "pair", "triplet", "quad", "bcd", "intel-me", "intel-me2",
// "surface-legacy", "surface", "dell-bios", "hex"); the empty string means
// "plain". An unknown format is an error naming it.
//
// fwupd's rules, reproduced here so that fleetup decides as fwupd will:
// "plain" compares byte by byte (fwupd uses strcmp, so "1.10" < "1.9");
// every other format splits on dots and compares each section numerically,
// then by its non-numeric remainder, with '~' sorting first. A version that
// is a bare integer (decimal, or hexadecimal with a 0x prefix) in a dotted
// format is first converted the way fwupd converts raw release versions
// ("0x01020003" in "triplet" is "1.2.3"); in "hex" and "number" integers
// compare by value.
package version

import (
	"fmt"
	"strconv"
	"strings"
)

// Compare returns -1, 0 or +1 as a is older than, the same as, or newer than
// b under format. It fails for an unknown format, and for dpkg and rpm
// versions too malformed to split into their parts (a bad epoch, say).
// Compare(f, a, b) == -Compare(f, b, a) whenever both succeed.
func Compare(format, a, b string) (int, error) {
	switch format {
	case "dpkg":
		va, err := parseDpkg(a)
		if err != nil {
			return 0, fmt.Errorf("dpkg version %q: %w", a, err)
		}
		vb, err := parseDpkg(b)
		if err != nil {
			return 0, fmt.Errorf("dpkg version %q: %w", b, err)
		}
		return compareDpkg(va, vb), nil
	case "rpm":
		va, err := parseRPM(a)
		if err != nil {
			return 0, fmt.Errorf("rpm version %q: %w", a, err)
		}
		vb, err := parseRPM(b)
		if err != nil {
			return 0, fmt.Errorf("rpm version %q: %w", b, err)
		}
		return compareRPM(va, vb), nil
	}
	f, err := fwupdFormat(format)
	if err != nil {
		return 0, err
	}
	return compareFwupd(f, a, b), nil
}

// Validate reports whether v is a well-formed version in format, with an
// error naming the version, the format and what is wrong.
func Validate(format, v string) error {
	var err error
	switch format {
	case "dpkg":
		err = validateDpkg(v)
	case "rpm":
		err = validateRPM(v)
	default:
		f, ferr := fwupdFormat(format)
		if ferr != nil {
			return ferr
		}
		err = validateFwupd(f, v)
	}
	if err != nil {
		if format == "" {
			format = "plain"
		}
		return fmt.Errorf("invalid %s version %q: %w", format, v, err)
	}
	return nil
}

// Formats lists every format name Compare and Validate accept, besides "".
func Formats() []string {
	out := []string{"dpkg", "rpm"}
	for _, f := range fwupdFormats {
		out = append(out, string(f))
	}
	return out
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

// at returns s[i], or 0 past the end, as C strings do.
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// parseUint parses a decimal or 0x-prefixed hexadecimal integer no larger
// than max.
func parseUint(s string, max uint64) (uint64, bool) {
	base := 10
	digits := s
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		base, digits = 16, s[2:]
	}
	if digits == "" || strings.ContainsAny(digits, "+-_ ") {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, base, 64)
	if err != nil || n > max {
		return 0, false
	}
	return n, true
}
