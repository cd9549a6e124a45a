package version

import (
	"errors"
	"fmt"
	"strings"
)

// fwupdFmt is one of fwupd's FwupdVersionFormat names.
type fwupdFmt string

var fwupdFormats = []fwupdFmt{
	"plain", "number", "pair", "triplet", "quad", "bcd", "intel-me",
	"intel-me2", "surface-legacy", "surface", "dell-bios", "hex",
}

func fwupdFormat(name string) (fwupdFmt, error) {
	if name == "" {
		return "plain", nil
	}
	for _, f := range fwupdFormats {
		if string(f) == name {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown version format %q", name)
}

// sections is how many dot-separated numbers a version in f has; 1 for
// plain, number and hex.
func (f fwupdFmt) sections() int {
	switch f {
	case "pair", "bcd":
		return 2
	case "triplet", "surface-legacy", "surface", "dell-bios":
		return 3
	case "quad", "intel-me", "intel-me2":
		return 4
	}
	return 1
}

// fromUint32 is fwupd's fu_version_from_uint32: how a raw 32-bit version
// reads in f.
func (f fwupdFmt) fromUint32(v uint32) string {
	bcd := func(x uint32) uint32 { return ((x>>4)&0x0f)*10 + x&0x0f }
	switch f {
	case "quad":
		return fmt.Sprintf("%d.%d.%d.%d", v>>24&0xff, v>>16&0xff, v>>8&0xff, v&0xff)
	case "triplet":
		return fmt.Sprintf("%d.%d.%d", v>>24&0xff, v>>16&0xff, v&0xffff)
	case "pair":
		return fmt.Sprintf("%d.%d", v>>16&0xffff, v&0xffff)
	case "bcd":
		return fmt.Sprintf("%d.%d.%d.%d", bcd(v>>24), bcd(v>>16), bcd(v>>8), bcd(v))
	case "intel-me":
		return fmt.Sprintf("%d.%d.%d.%d", (v>>29&0x07)+0x0b, v>>24&0x1f, v>>16&0xff, v&0xffff)
	case "intel-me2":
		return fmt.Sprintf("%d.%d.%d.%d", v>>28&0x0f, v>>24&0x0f, v>>16&0xff, v&0xffff)
	case "surface-legacy":
		return fmt.Sprintf("%d.%d.%d", v>>22&0x3ff, v>>10&0xfff, v&0x3ff)
	case "surface":
		return fmt.Sprintf("%d.%d.%d", v>>24&0xff, v>>8&0xffff, v&0xff)
	case "dell-bios":
		return fmt.Sprintf("%d.%d.%d", v>>16&0xff, v>>8&0xff, v&0xff)
	case "hex":
		return fmt.Sprintf("0x%08x", v)
	}
	return fmt.Sprint(v)
}

// normalize converts a bare integer version into f's dotted form, as fwupd
// does with fu_version_parse_from_format for raw release versions. Dates
// (20YYMMDD), zero and anything with a dot are left alone.
func (f fwupdFmt) normalize(v string) string {
	if f == "plain" || f == "number" || strings.Contains(v, ".") {
		return v
	}
	if strings.HasPrefix(v, "20") && len(v) == 8 {
		return v
	}
	n, ok := parseUint(v, 0xffffffff)
	if !ok || n == 0 {
		return v
	}
	return f.fromUint32(uint32(n))
}

func compareFwupd(f fwupdFmt, a, b string) int {
	switch f {
	case "plain":
		return strings.Compare(a, b)
	case "number", "hex":
		na, oka := parseUint(a, 1<<64-1)
		nb, okb := parseUint(b, 1<<64-1)
		if oka && okb {
			switch {
			case na < nb:
				return -1
			case na > nb:
				return 1
			}
			return 0
		}
		if f == "number" {
			return compareSafe(a, b)
		}
	}
	return compareSafe(f.normalize(a), f.normalize(b))
}

func validateFwupd(f fwupdFmt, v string) error {
	if v == "" {
		return errors.New("empty")
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("contains control characters")
	}
	switch f {
	case "plain":
		return nil
	case "number", "hex":
		if _, ok := parseUint(v, 1<<64-1); !ok {
			return errors.New("not a decimal or 0x-prefixed hexadecimal number")
		}
		return nil
	}
	n := f.sections()
	parts := strings.Split(f.normalize(v), ".")
	if len(parts) != n {
		return fmt.Errorf("has %d dot-separated sections, want %d", len(parts), n)
	}
	for _, p := range parts {
		if p == "" || !allDigits(p) {
			return fmt.Errorf("section %q is not a number", p)
		}
	}
	return nil
}

// compareSafe is fwupd's fu_version_compare_safe: split on dots; compare
// the leading integers of each section (strtoll), then what follows them
// character by character with '~' first; a version with fewer sections is
// older.
func compareSafe(a, b string) int {
	if a == b {
		return 0
	}
	sa, sb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(sa), len(sb)); i++ {
		if i >= len(sa) {
			return -1
		}
		if i >= len(sb) {
			return 1
		}
		na, ra := strtoll(sa[i])
		nb, rb := strtoll(sb[i])
		if na < nb {
			return -1
		}
		if na > nb {
			return 1
		}
		if ra != "" || rb != "" {
			if r := compareChunk(ra, rb); r != 0 {
				return r
			}
		}
	}
	return 0
}

// strtoll is g_ascii_strtoll(s, &end, 10): leading space, a sign, digits,
// saturating; it returns the value and the unparsed rest (all of s when no
// digits were found).
func strtoll(s string) (int64, string) {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var n uint64
	over := false
	for i < len(s) && isDigit(s[i]) {
		d := uint64(s[i] - '0')
		if n > (1<<63-d)/10 {
			over = true
		} else {
			n = n*10 + d
		}
		i++
	}
	if i == start {
		return 0, s
	}
	switch {
	case over && neg:
		return -1 << 63, s[i:]
	case over:
		return 1<<63 - 1, s[i:]
	case neg && n == 1<<63:
		return -1 << 63, s[i:]
	case n >= 1<<63:
		return 1<<63 - 1, s[i:]
	case neg:
		return -int64(n), s[i:]
	}
	return int64(n), s[i:]
}

func compareChar(a, b byte) int {
	switch {
	case a == b:
		return 0
	case a == '~':
		return -1
	case b == '~':
		return 1
	case a < b:
		return -1
	}
	return 1
}

// compareChunk is fwupd's fu_version_compare_chunk.
func compareChunk(a, b string) int {
	if a == b {
		return 0
	}
	i := 0
	for ; i < len(a) && i < len(b); i++ {
		if r := compareChar(a[i], b[i]); r != 0 {
			return r
		}
	}
	return compareChar(at(a, i), at(b, i))
}
