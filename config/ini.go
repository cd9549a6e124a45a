package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxINILine bounds one line of an ini file.
const maxINILine = 64 << 10

// INI is a parsed ini file: its key=value lines in file order.
type INI struct {
	Entries []Entry
}

// Entry is one key=value line.
type Entry struct {
	// Section is the name of the [section] the line is in, as written
	// (without brackets and surrounding blanks); "" before the first.
	Section string
	// Key is the key as written, without surrounding blanks.
	Key string
	// Value is the value without surrounding blanks, or what was between
	// double quotes.
	Value string
	// Line is the line number, from 1.
	Line int
}

// ParseError is a line of an ini file that is not a [section], a
// key=value pair, a comment or blank.
type ParseError struct {
	File   string
	Line   int
	Reason string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// ParseINI reads an ini file as HP SUM writes hpsum.ini and as fleetup's
// own configuration is written:
//
//	; comment
//	[hpsum]
//	port=80
//	SSL_PORT = "443"   # a comment
//
// Lines are [section] headers, key=value pairs, comments (starting with ';'
// or '#') or blank. A ';' or '#' at the start of a value or after a blank
// starts a comment too, unless inside double quotes; double quotes keep
// blanks, ';' and '#' in a value. Keys keep their case and sections are
// not interpreted: that is the caller's business. name is the file's name
// for errors ("FILE:LINE: ..."); every bad line is reported, joined.
func ParseINI(r io.Reader, name string) (*INI, error) {
	f := &INI{}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, &ParseError{File: name, Line: line, Reason: fmt.Sprintf(format, args...)})
	}
	section := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxINILine)
	n := 0
	for sc.Scan() {
		n++
		line := trimLine(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			if i := commentStart(line); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			if !strings.HasSuffix(line, "]") {
				bad(n, "malformed section header: want [NAME]")
				continue
			}
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			bad(n, "want key=value, a [section] or a comment")
			continue
		}
		key = strings.TrimSpace(key)
		if key == "" {
			bad(n, "key=value line without a key")
			continue
		}
		value, err := parseValue(raw)
		if err != nil {
			bad(n, "%s: %v", key, err)
			continue
		}
		f.Entries = append(f.Entries, Entry{Section: section, Key: key, Value: value, Line: n})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxINILine)
		}
		bad(n+1, "%v", err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// trimLine drops blanks and byte order marks from both ends of a line.
func trimLine(s string) string {
	for {
		t := strings.TrimSpace(strings.TrimPrefix(s, "\ufeff"))
		if t == s {
			return s
		}
		s = t
	}
}

// commentStart is the index of the first ';' or '#' that starts s or
// follows a space or tab, or -1.
func commentStart(s string) int {
	for i := 0; i < len(s); i++ {
		if (s[i] == ';' || s[i] == '#') && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return i
		}
	}
	return -1
}

// parseValue reads what follows '=': a quoted value ends at the last
// double quote, which only blanks or a comment may follow; an unquoted one
// ends at a comment.
func parseValue(raw string) (string, error) {
	v := strings.TrimSpace(raw)
	if strings.HasPrefix(v, `"`) {
		end := strings.LastIndexByte(v, '"')
		if end == 0 {
			return "", errors.New("value has no closing double quote")
		}
		rest := strings.TrimSpace(v[end+1:])
		if rest != "" && commentStart(rest) != 0 {
			return "", fmt.Errorf("text %q after the closing double quote", rest)
		}
		return v[1:end], nil
	}
	if i := commentStart(raw); i >= 0 {
		raw = raw[:i]
	}
	return strings.TrimSpace(raw), nil
}

// needsQuotes reports whether v must be written in double quotes to be
// read back as is.
func needsQuotes(v string) bool {
	return strings.TrimSpace(v) != v || strings.HasPrefix(v, `"`) || commentStart(v) >= 0
}

// WriteTo writes f in the form ParseINI reads back to the same entries:
// a [section] header whenever the section changes, then key=value lines,
// values quoted where needed. It refuses entries that cannot be written
// so: keys that are empty, hold '=', start a comment or a section, or have
// surrounding blanks; values or sections with line breaks.
func (f *INI) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	section := ""
	for _, e := range f.Entries {
		if err := e.check(); err != nil {
			return 0, err
		}
		if e.Section != section {
			fmt.Fprintf(&b, "[%s]\n", e.Section)
			section = e.Section
		}
		v := e.Value
		if needsQuotes(v) {
			v = `"` + v + `"`
		}
		fmt.Fprintf(&b, "%s=%s\n", e.Key, v)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func (e Entry) check() error {
	switch {
	case e.Key == "" || trimLine(e.Key) != e.Key:
		return fmt.Errorf("ini key %q: empty or with surrounding blanks", e.Key)
	case strings.ContainsAny(e.Key, "=\n") || strings.ContainsAny(e.Key[:1], ";#["):
		return fmt.Errorf("ini key %q: holds '=' or a line break, or starts a comment or section", e.Key)
	case strings.Contains(e.Value, "\n"):
		return fmt.Errorf("ini value of %s: holds a line break", e.Key)
	case strings.Contains(e.Section, "\n") || strings.TrimSpace(e.Section) != e.Section || commentStart("["+e.Section+"]") >= 0:
		return fmt.Errorf("ini section %q: holds a line break, a comment or surrounding blanks", e.Section)
	}
	return nil
}
