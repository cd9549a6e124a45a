package version

import (
	"errors"
	"fmt"
	"strings"
)

// rpmVersion is [epoch:]version[-release]; hasRelease tells "no release"
// from an empty one.
type rpmVersion struct {
	epoch      string
	version    string
	release    string
	hasRelease bool
}

// parseRPM splits v as rpm's rpmverParse does: the epoch is the digits
// before a colon (missing means 0), the release follows the last hyphen.
func parseRPM(v string) (rpmVersion, error) {
	var r rpmVersion
	s := v
	if s == "" {
		return r, errors.New("empty")
	}
	r.epoch = "0"
	if i := strings.IndexByte(s, ':'); i >= 0 {
		e := s[:i]
		if e == "" || !allDigits(e) {
			return r, fmt.Errorf("epoch %q is not a number", e)
		}
		r.epoch = e
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		r.version, r.release, r.hasRelease = s[:i], s[i+1:], true
	} else {
		r.version = s
	}
	return r, nil
}

func validateRPM(v string) error {
	if strings.ContainsAny(v, " \t\n\r\v\f") {
		return errors.New("contains whitespace")
	}
	r, err := parseRPM(v)
	if err != nil {
		return err
	}
	if r.version == "" {
		return errors.New("version is empty")
	}
	if strings.ContainsAny(r.version, "-:") {
		return errors.New("version part contains '-' or ':'")
	}
	if r.hasRelease && r.release == "" {
		return errors.New("release is empty")
	}
	if !strings.ContainsFunc(r.version, func(c rune) bool { return c < 0x80 && isAlnum(byte(c)) }) {
		return errors.New("version has no letter or digit")
	}
	return nil
}

func compareRPM(a, b rpmVersion) int {
	if r := rpmvercmp(a.epoch, b.epoch); r != 0 {
		return r
	}
	if r := rpmvercmp(a.version, b.version); r != 0 {
		return r
	}
	// As rpm.vercmp (rpmverParse, rpmverCmp): a missing release is an
	// empty one, older than any release.
	return rpmvercmp(a.release, b.release)
}

// rpmvercmp is rpm's lib/rpmvercmp.c: segments of digits or letters,
// separators ignored, '~' sorting before everything (even the end) and '^'
// after the end but before anything else.
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		ca, cb := at(a, i), at(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == '^' || cb == '^' {
			if ca == 0 {
				return -1
			}
			if cb == 0 {
				return 1
			}
			if ca != '^' {
				return 1
			}
			if cb != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == 0 || cb == 0 {
			break
		}
		ei, ej := i, j
		isNum := isDigit(ca)
		if isNum {
			for ei < len(a) && isDigit(a[ei]) {
				ei++
			}
			for ej < len(b) && isDigit(b[ej]) {
				ej++
			}
		} else {
			for ei < len(a) && isAlpha(a[ei]) {
				ei++
			}
			for ej < len(b) && isAlpha(b[ej]) {
				ej++
			}
		}
		if ej == j {
			// Different segment types: numeric is newer than alpha.
			if isNum {
				return 1
			}
			return -1
		}
		sa, sb := a[i:ei], b[j:ej]
		if isNum {
			sa, sb = strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				return sign(len(sa) - len(sb))
			}
		}
		if r := strings.Compare(sa, sb); r != 0 {
			return r
		}
		i, j = ei, ej
	}
	if i >= len(a) && j >= len(b) {
		return 0
	}
	if i >= len(a) {
		return -1
	}
	return 1
}
