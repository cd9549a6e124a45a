package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseINI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Entry
		err  string // "" when the input is good
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "; one\n# two\n\n   \n", nil, ""},
		{"keys before any section", "port=80\n", []Entry{{"", "port", "80", 1}}, ""},
		{"sections, case and blanks kept", "[hpsum]\n  Port = 80  \n[ Defaults ]\nSSL_PORT=443\n",
			[]Entry{{"hpsum", "Port", "80", 2}, {"Defaults", "SSL_PORT", "443", 4}}, ""},
		{"crlf and bom", "\ufeff[hpsum]\r\nport=80\r\n", []Entry{{"hpsum", "port", "80", 2}}, ""},
		{"inline comments", "[s] ; note\nport=80 ; http\nssl_port=443\t# https\n", []Entry{{"s", "port", "80", 2}, {"s", "ssl_port", "443", 3}}, ""},
		{"semicolon inside a value", "logdir=C:\\a;b\n", []Entry{{"", "logdir", `C:\a;b`, 1}}, ""},
		{"quoted", "k=\"  a ; b \" ; c\n", []Entry{{"", "k", "  a ; b ", 1}}, ""},
		{"value holding =", "k=a=b\n", []Entry{{"", "k", "a=b", 1}}, ""},
		{"empty value", "k=\nj= ; c\n", []Entry{{"", "k", "", 1}, {"", "j", "", 2}}, ""},
		{"no equals sign", "port 80\n", nil, "x.ini:1: want key=value"},
		{"no key", "=80\n", nil, "x.ini:1: key=value line without a key"},
		{"bad section", "[hpsum\n", nil, "x.ini:1: malformed section header"},
		{"unclosed quote", "k=\"abc\n", nil, "x.ini:1: k: value has no closing double quote"},
		{"text after quote", "\n\nk=\"a\" b\n", nil, `x.ini:3: k: text "b" after the closing double quote`},
		{"line too long", "k=" + strings.Repeat("x", maxINILine) + "\n", nil, "x.ini:1: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseINI(strings.NewReader(tt.in), "x.ini")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, f.Entries, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseINIReportsEveryLine(t *testing.T) {
	_, err := ParseINI(strings.NewReader("a\nport=1\nb\n[c\n"), "x.ini")
	for _, w := range []string{"x.ini:1:", "x.ini:3:", "x.ini:4:"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}

func TestINIWriteToRefuses(t *testing.T) {
	for _, e := range []Entry{
		{Key: ""}, {Key: " k"}, {Key: "a=b"}, {Key: ";k"}, {Key: "[k"}, {Key: "k", Value: "a\nb"},
		{Section: "a\nb", Key: "k"}, {Section: " s", Key: "k"}, {Section: "s ;x", Key: "k"},
	} {
		f := &INI{Entries: []Entry{e}}
		if _, err := f.WriteTo(&bytes.Buffer{}); err == nil {
			t.Errorf("%+v written; want an error", e)
		}
	}
}

// FuzzParseINI checks that ParseINI never panics and that what it accepts
// survives a round trip through WriteTo.
func FuzzParseINI(f *testing.F) {
	for _, s := range []string{
		"", "[hpsum]\nport=80\nssl_port=443\n", "\ufeff; c\r\n[Defaults]\r\nPORT = 8080 ; x\r\n",
		"k=\"  a ; b \" ; c\n", "k=\"\"\"\n", "[a]]\nk=v#w\n[]\nj=\n", "=x\n", "[x\n", "k=\"a\n",
		"k=a\rb\n", "[#s]\nk=;\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ini, err := ParseINI(strings.NewReader(in), "fuzz.ini")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := ini.WriteTo(&buf); err != nil {
			t.Fatalf("parsed %q but cannot write it: %v", in, err)
		}
		again, err := ParseINI(bytes.NewReader(buf.Bytes()), "again.ini")
		if err != nil {
			t.Fatalf("parsed %q, wrote %q, which does not parse: %v", in, buf.String(), err)
		}
		noLines := cmpopts.IgnoreFields(Entry{}, "Line")
		if diff := cmp.Diff(ini.Entries, again.Entries, noLines, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %q via %q (-first +second):\n%s", in, buf.String(), diff)
		}
	})
}
