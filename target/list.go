package target

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds one line of a nodes or input file.
const maxLine = 64 << 10

// ParseList reads a nodes file (or standard input): one target per line,
// "#" starting a comment, blank lines ignored. name is the file's name for
// errors ("FILE:LINE: ..."). Every bad line and every duplicate (the same
// host and port twice) is reported, joined.
func ParseList(r io.Reader, name string) ([]Target, error) {
	var (
		targets []Target
		errs    errorList
		seen    = map[string]int{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		t, err := Parse(line)
		if err != nil {
			errs.add(name, n, err)
			continue
		}
		if first, ok := seen[t.Addr()]; ok {
			errs.add(name, n, fmt.Errorf("duplicate target %s (first on line %d)", t.Addr(), first))
			continue
		}
		seen[t.Addr()] = n
		targets = append(targets, t)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxLine)
		}
		errs.add(name, n+1, err)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%s: no targets", name)
	}
	return targets, nil
}
