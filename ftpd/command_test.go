package ftpd

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Command
		wantErr string
	}{
		{name: "verb only", line: "NOOP\r\n", want: Command{Verb: "NOOP"}},
		{name: "bare LF", line: "pwd\n", want: Command{Verb: "PWD"}},
		{name: "no line end", line: "QUIT", want: Command{Verb: "QUIT"}},
		{name: "lower case verb", line: "retr fw.bin\r\n", want: Command{Verb: "RETR", Arg: "fw.bin"}},
		{name: "argument with spaces kept", line: "RETR my image .bin\r\n", want: Command{Verb: "RETR", Arg: "my image .bin"}},
		{name: "leading space of argument kept", line: "RETR  x\r\n", want: Command{Verb: "RETR", Arg: " x"}},
		{name: "traversal passes the parser", line: "RETR ../../etc/passwd\r\n", want: Command{Verb: "RETR", Arg: "../../etc/passwd"}},
		{name: "trailing space", line: "LIST \r\n", want: Command{Verb: "LIST"}},
		{name: "utf8 argument", line: "RETR prüfung.bin\r\n", want: Command{Verb: "RETR", Arg: "prüfung.bin"}},
		{name: "empty", line: "\r\n", wantErr: "empty command line"},
		{name: "short verb", line: "CD /\r\n", wantErr: `command "CD": verb must be 3 or 4 letters`},
		{name: "long verb", line: "RETRIEVE x\r\n", wantErr: "verb must be 3 or 4 letters"},
		{name: "digit in verb", line: "RET1 x\r\n", wantErr: "verb must be ASCII letters"},
		{name: "leading space", line: " RETR x\r\n", wantErr: "verb must be 3 or 4 letters"},
		{name: "NUL in argument", line: "RETR a\x00b\r\n", wantErr: "RETR: argument has control character 0x00 at byte 1"},
		{name: "CR inside", line: "RETR a\rb\r\n", wantErr: "control character 0x0d"},
		{name: "telnet IAC in argument is not control", line: "RETR \xff\xf4x", want: Command{Verb: "RETR", Arg: "\xff\xf4x"}},
		{name: "too long", line: "RETR " + strings.Repeat("a", MaxLineBytes) + "\r\n", wantErr: "is longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCommand(%q) error = %v, want one containing %q", tt.line, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.line, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCommand(%q) (-want +got):\n%s", tt.line, diff)
			}
		})
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"NOOP\r\n", "RETR fw.bin\r\n", "USER fleetup-1\r\n", "RETR ../../etc/passwd", "EPSV ALL", "REST 100", "\x00", "", "a b c\n\r", "LIST -la /"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := ParseCommand(line)
		if err != nil {
			if cmd != (Command{}) {
				t.Fatalf("ParseCommand(%q) returned %+v with error %v", line, cmd, err)
			}
			return
		}
		if n := len(cmd.Verb); n < 3 || n > 4 {
			t.Fatalf("ParseCommand(%q): verb %q", line, cmd.Verb)
		}
		for _, r := range cmd.Verb {
			if r < 'A' || r > 'Z' {
				t.Fatalf("ParseCommand(%q): verb %q not upper-case ASCII", line, cmd.Verb)
			}
		}
		for _, r := range cmd.Arg {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("ParseCommand(%q): argument %q has control character", line, cmd.Arg)
			}
		}
		if !strings.HasPrefix(strings.ToUpper(line), cmd.Verb) {
			t.Fatalf("ParseCommand(%q): verb %q is not the line's start", line, cmd.Verb)
		}
		if cmd.Arg != "" && !strings.Contains(line, " "+cmd.Arg) {
			t.Fatalf("ParseCommand(%q): argument %q is not in the line", line, cmd.Arg)
		}
	})
}
