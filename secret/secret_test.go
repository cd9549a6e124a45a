package secret

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetup/fleetup/proc"
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
		{name: "file group readable", src: func(t *testing.T) Source { return Source{File: writeFile(t, "x", 0o640)} }, errorHas: []string{"readable or writable by group or others (mode 0640)", "chmod 600"}},
		{name: "file world readable", src: func(t *testing.T) Source { return Source{File: writeFile(t, "x", 0o604)} }, errorHas: []string{"mode 0604", "chmod 600"}},
		{name: "file group writable", src: func(t *testing.T) Source { return Source{File: writeFile(t, "x", 0o620)} }, errorHas: []string{"mode 0620", "chmod 600"}},
		{name: "file world writable", src: func(t *testing.T) Source { return Source{File: writeFile(t, "x", 0o602)} }, errorHas: []string{"mode 0602", "chmod 600"}},
		{name: "file group executable", src: func(t *testing.T) Source { return Source{File: writeFile(t, "x", 0o610)} }, errorHas: []string{"mode 0610", "chmod 600"}},
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

// The error names the file, its mode and the fix, and nothing is read.
func TestPasswordFileModeError(t *testing.T) {
	p := writeFile(t, "s3cret", 0o660)
	pw, err := Password(context.Background(), Source{File: p})
	if err == nil {
		t.Fatalf("Password = %q from a group-writable file", pw)
	}
	for _, s := range []string{p, "0660", "chmod 600 " + p} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q holds the password", err)
	}
}

// A file that is not the current user's is refused, and so is a symbolic
// link to one; a link to the user's own file is followed.
func TestPasswordFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{other, link} {
		pw, err := Password(context.Background(), Source{File: f})
		if err == nil {
			t.Errorf("Password(%s) = %q; a file owned by uid 65534 must be refused", f, pw)
			continue
		}
		for _, s := range []string{f, "owned by uid 65534", "chmod 600"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not contain %q", err, s)
			}
		}
	}
	mine := writeFile(t, "mine", 0o600)
	link2 := filepath.Join(dir, "link2")
	if err := os.Symlink(mine, link2); err != nil {
		t.Fatal(err)
	}
	if pw, err := Password(context.Background(), Source{File: link2}); err != nil || string(pw) != "mine" {
		t.Errorf("Password(link to own file) = %q, %v", pw, err)
	}
}

// The password variable is gone from the environment once read, so that
// nothing started afterwards inherits it, and children never get it.
func TestPasswordEnvUnset(t *testing.T) {
	const name = "FLEETUP_TEST_PW_UNSET"
	t.Setenv(name, "hunter2\n")
	pw, err := Password(context.Background(), Source{Env: name})
	if err != nil || string(pw) != "hunter2" {
		t.Fatalf("Password = %q, %v", pw, err)
	}
	if v, ok := os.LookupEnv(name); ok {
		t.Errorf("%s=%q is still in the environment", name, v)
	}
	if !InEnv(name) {
		t.Errorf("InEnv(%s) is false after the password was taken from it", name)
	}
	if InEnv("FLEETUP_TEST_NEVER_SET") {
		t.Error("InEnv of an unset variable is true")
	}
	if !proc.IsSecret(name) {
		t.Errorf("%s is not marked secret for children", name)
	}
	// Set again (a user's export later on): still kept from children.
	t.Setenv(name, "again")
	out, err := (&proc.Runner{}).Output(context.Background(), "env")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), name) {
		t.Errorf("a child sees %s", name)
	}
}

// A password file marks the variable secret too: a user's FLEETUP_PASSWORD
// or --password-env variable must not reach children either.
func TestPasswordFileMarksEnvSecret(t *testing.T) {
	const name = "FLEETUP_TEST_PW_FILE_ENV"
	if _, err := Password(context.Background(), Source{File: writeFile(t, "x", 0o600), Env: name}); err != nil {
		t.Fatal(err)
	}
	if !proc.IsSecret(name) {
		t.Errorf("%s is not marked secret", name)
	}
}
