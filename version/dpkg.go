package version

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// dpkgVersion is epoch:upstream-revision, as dpkg's parseversion splits it.
type dpkgVersion struct {
	epoch    int
	upstream string
	revision string
}

// parseDpkg splits v the way dpkg does: the epoch before the first colon,
// the revision after the last hyphen. It fails only when v cannot be split
// (empty, or an epoch that is not a number); validateDpkg checks the rest.
func parseDpkg(v string) (dpkgVersion, error) {
	var d dpkgVersion
	s := strings.TrimSpace(v)
	if s == "" {
		return d, errors.New("empty")
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		e := s[:i]
		if e == "" || !allDigits(e) {
			return d, fmt.Errorf("epoch %q is not a number", e)
		}
		n, err := strconv.ParseUint(e, 10, 64)
		if err != nil || n > math.MaxInt32 {
			return d, fmt.Errorf("epoch %q is too big", e)
		}
		d.epoch = int(n)
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		d.upstream, d.revision = s[:i], s[i+1:]
	} else {
		d.upstream = s
	}
	return d, nil
}

func validateDpkg(v string) error {
	if strings.ContainsAny(v, " \t\n\r\v\f") {
		return errors.New("contains whitespace")
	}
	d, err := parseDpkg(v)
	if err != nil {
		return err
	}
	if d.upstream == "" {
		return errors.New("upstream version is empty")
	}
	if strings.HasSuffix(v, "-") {
		return errors.New("revision is empty")
	}
	if !isDigit(d.upstream[0]) {
		return errors.New("upstream version does not start with a digit")
	}
	for i := 0; i < len(d.upstream); i++ {
		c := d.upstream[i]
		if !isAlnum(c) && !strings.ContainsRune(".-+~:", rune(c)) {
			return fmt.Errorf("invalid character %q in upstream version", c)
		}
		if c == ':' {
			return errors.New("more than one colon")
		}
	}
	for i := 0; i < len(d.revision); i++ {
		c := d.revision[i]
		if !isAlnum(c) && !strings.ContainsRune(".+~", rune(c)) {
			return fmt.Errorf("invalid character %q in revision", c)
		}
	}
	return nil
}

func compareDpkg(a, b dpkgVersion) int {
	if a.epoch != b.epoch {
		return sign(a.epoch - b.epoch)
	}
	if r := verrevcmp(a.upstream, b.upstream); r != 0 {
		return sign(r)
	}
	return sign(verrevcmp(a.revision, b.revision))
}

// order is dpkg's character weight: digits 0 (handled apart), letters
// their own value, '~' below everything including the end of the string,
// other characters after all letters.
func order(c byte) int {
	switch {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	case c != 0:
		return int(c) + 256
	}
	return 0
}

// verrevcmp is dpkg's lib/dpkg/version.c verrevcmp: alternating runs of
// non-digits (compared by order) and digits (compared by value).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(at(a, i)), order(at(b, j))
			if ac != bc {
				return ac - bc
			}
			i++
			j++
		}
		for at(a, i) == '0' {
			i++
		}
		for at(b, j) == '0' {
			j++
		}
		for isDigit(at(a, i)) && isDigit(at(b, j)) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if isDigit(at(a, i)) {
			return 1
		}
		if isDigit(at(b, j)) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}
