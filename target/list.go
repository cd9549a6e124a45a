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

// ParseList reads a nodes file (or standard input): one server per line,
// "#" starting a comment, blank lines ignored. A line is one target, or
// several separated by white space that are one server's addresses, at
// most one of each kind:
//
//	node1
//	root@198.18.1.2  bmc://admin@198.18.2.2
//
// The targets of a line of several each have Server set to the line's
// first target (its String()). name is the file's name for errors
// ("FILE:LINE: ..."). Every bad line and every duplicate (the same kind,
// host and port twice, anywhere in the file) is reported, joined. The
// targets are returned in file order.
func ParseList(r io.Reader, name string) ([]Target, error) {
	var (
		targets []Target
		errs    errorList
		seen    = seenTargets{}
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
		ts, lineErrs := parseServer(line, KindSSH)
		lineErrs = append(lineErrs, seen.add(ts, n)...)
		for _, err := range lineErrs {
			errs.add(name, n, err)
		}
		if len(lineErrs) == 0 {
			targets = append(targets, ts...)
		}
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
