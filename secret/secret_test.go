package secret

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPassword(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name     string
		src      func(t *testing.T) Source
		env      map[string]string
		want     string
		errorHas []string
	}{
		{name: "file", src: func(t *testing.T) Source { return Source{File: writeFile(t, "s3cret\n", 0o600)} }, want: "s3cret"},
		{name: "file 0400", src: func(t *testing.T) Source { return Source{File: writeFile(t, "s3cret", 0o400)} }, want: "s3cret"},
		{name: "file crlf", src: func(t *testing.T) Source { return Source{File: writeFile(t, "s3cret\r\n", 0o600)} }, want: "s3cret"},
		{name: "file only one newline trimmed", src: func(t *testing.T) Source { return Source{File: writeFile(t, "s3 cret \n\n", 0o600)} }, want: "s3 cret \n"},
		{name: "file group readable", src: func(t *testing.T) Source { return Source{File: writeFile(t, "x", 0o640)} }, errorHas: []string{"readable by group or others (mode 0640)", "chmod 600"}},
		{name: "file world readable", src: func(t *testing.T) Source { return Source{File: writeFile(t, "x", 0o604)} }, errorHas: []string{"mode 0604", "chmod 600"}},
		{name: "file empty", src: func(t *testing.T) Source { return Source{File: writeFile(t, "\n", 0o600)} }, errorHas: []string{"is empty"}},
		{name: "file missing", src: func(t *testing.T) Source { return Source{File: missing} }, errorHas: []string{missing}},
		{name: "file too long", src: func(t *testing.T) Source { return Source{File: writeFile(t, strings.Repeat("x", 5000), 0o600)} }, errorHas: []string{"longer than"}},
		{name: "file is a directory", src: func(t *testing.T) Source { return Source{File: t.TempDir()} }, errorHas: []string{"not a regular file"}},
		{name: "stdin dash", src: func(t *testing.T) Source { return Source{File: "-", Stdin: strings.NewReader("piped\n")} }, want: "piped"},
		{name: "env default", src: func(t *testing.T) Source { return Source{} }, env: map[string]string{DefaultEnv: "from-env\n"}, want: "from-env"},
		{name: "env named", src: func(t *testing.T) Source { return Source{Env: "MY_PW"} }, env: map[string]string{"MY_PW": "mine", DefaultEnv: "other"}, want: "mine"},
		{name: "file before env", src: func(t *testing.T) Source { return Source{File: writeFile(t, "file", 0o600)} }, env: map[string]string{DefaultEnv: "env"}, want: "file"},
		{name: "bad file does not fall back to env", src: func(t *testing.T) Source { return Source{File: missing} }, env: map[string]string{DefaultEnv: "env"}, errorHas: []string{"password file"}},
		{name: "env before prompt", src: func(t *testing.T) Source { return Source{Prompt: "pw: ", Stdin: strings.NewReader("typed\n")} }, env: map[string]string{DefaultEnv: "env"}, want: "env"},
		{name: "empty env ignored", src: func(t *testing.T) Source { return Source{Prompt: "pw: ", Stdin: strings.NewReader("typed\n")} }, env: map[string]string{DefaultEnv: ""}, want: "typed"},
		{name: "prompt", src: func(t *testing.T) Source { return Source{Prompt: "pw: ", Stdin: strings.NewReader("typed\nmore\n")} }, want: "typed"},
		{name: "prompt empty line", src: func(t *testing.T) Source { return Source{Prompt: "pw: ", Stdin: strings.NewReader("\n")} }, errorHas: []string{"empty password"}},
		{name: "nothing", src: func(t *testing.T) Source { return Source{Env: "FLEETUP_TEST_UNSET"} }, errorHas: []string{"no password", "--password-file", "FLEETUP_TEST_UNSET", "terminal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(DefaultEnv, "")
			os.Unsetenv(DefaultEnv)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := Password(context.Background(), tt.src(t))
			if len(tt.errorHas) > 0 {
				if err == nil {
					t.Fatalf("Password = %q, want an error", got)
				}
				for _, s := range tt.errorHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Password = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNoPasswordIsErrNoPassword(t *testing.T) {
	_, err := Password(context.Background(), Source{Env: "FLEETUP_TEST_UNSET"})
	if !errors.Is(err, ErrNoPassword) {
		t.Fatalf("error %v is not ErrNoPassword", err)
	}
}
