package ftpd

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLineBytes bounds one command line, CRLF included. A longer line is
// answered 500; one longer than 64 KiB also ends the session.
const MaxLineBytes = 1024

// Command is one parsed control-connection line: Verb is upper-case ASCII
// letters (3 or 4 of them), Arg is everything after the first space,
// unchanged (file names may contain spaces).
type Command struct {
	Verb string
	Arg  string
}

// ParseCommand parses one control line as a client sent it, with or
// without the trailing CRLF (or a bare LF). It refuses an empty line, a verb
// that is not 3-4 ASCII letters, a verb not followed by a space or the end,
// and any control character (NUL, CR or LF inside the line, ...) in the
// argument, naming what it refused.
func ParseCommand(line string) (Command, error) {
	s := strings.TrimSuffix(line, "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return Command{}, errors.New("empty command line")
	}
	if len(s)+2 > MaxLineBytes {
		return Command{}, fmt.Errorf("command line of %d bytes is longer than %d", len(s), MaxLineBytes-2)
	}
	verb, arg, _ := strings.Cut(s, " ")
	if len(verb) < 3 || len(verb) > 4 {
		return Command{}, fmt.Errorf("command %q: verb must be 3 or 4 letters", quoteShort(verb))
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return Command{}, fmt.Errorf("command %q: verb must be ASCII letters", quoteShort(verb))
		}
	}
	for i := 0; i < len(arg); i++ {
		if c := arg[i]; c < 0x20 || c == 0x7f {
			return Command{}, fmt.Errorf("command %s: argument has control character %#02x at byte %d", strings.ToUpper(verb), c, i)
		}
	}
	return Command{Verb: strings.ToUpper(verb), Arg: arg}, nil
}

// quoteShort keeps error messages about hostile input short.
func quoteShort(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}
