package cli

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/store"
)

// readArchive returns the members of a .tar.gz by name, failing on any
// member that is not a plain file with a plain relative name.
func readArchive(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(h.Name) || strings.ContainsAny(h.Name, ":\\") || strings.Contains(h.Name, "..") {
			t.Errorf("member %q (type %c) is not a plain local file", h.Name, h.Typeflag)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = string(b)
	}
	return out
}

func TestLogs(t *testing.T) {
	dir := recordStoreRun(t)
	// The run's history record and journal file, another run's, and the
	// run's FTP credentials, which are never gathered.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, runstate.HistoryDir), 0o700))
	must(os.WriteFile(filepath.Join(dir, runstate.HistoryDir, testRunID+".json"), []byte(`{"run_id":"`+testRunID+`"}`), 0o600))
	must(os.WriteFile(filepath.Join(dir, testRunID+".json"), []byte(`{"version":1}`), 0o600))
	must(os.WriteFile(filepath.Join(dir, "20200101-000000-000000.json"), []byte(`{}`), 0o600))
	must(os.WriteFile(runstate.FTPCredentialsPath(dir, testRunID), []byte("password=secret\n"), 0o600))

	t.Chdir(t.TempDir())
	code, out, errs := run(t, "", "logs", "latest", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	name := "fleetup-logs-" + testRunID + ".tar.gz"
	if strings.TrimSpace(out) != name {
		t.Errorf("stdout %q, want %s", out, name)
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v %v, want mode 0600", fi, err)
	}
	m := readArchive(t, name)
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{
		"events.log",
		"history/" + testRunID + ".json",
		"journal/" + testRunID + ".json",
		"nodes/bmc___admin@_fd42_5e__2__443.log",
		"nodes/root@198.18.1.2_22.log",
		"nodes/root@srv1_22.log",
		"report.html",
		"run.json",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	for n, body := range m {
		if strings.Contains(body, "secret") {
			t.Errorf("%s holds the FTP password", n)
		}
	}
	var rd store.RunDetail
	if err := json.Unmarshal([]byte(m["run.json"]), &rd); err != nil || rd.ID != testRunID || len(rd.Nodes) != 3 {
		t.Errorf("run.json: %v %+v", err, rd)
	}
	lines := strings.Split(strings.TrimSuffix(m["events.log"], "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("events.log has %d lines, want 4:\n%s", len(lines), m["events.log"])
	}
	wantLine := "2026-12-02T06:15:02Z\tbmc://admin@[fd42:5e::2]:443\tdeploy\tilo5\tdownload\t512/1024\tline one\\nline two\\tend"
	if lines[2] != wantLine {
		t.Errorf("event line\n%q, want\n%q", lines[2], wantLine)
	}
	if !strings.HasPrefix(lines[0], "2026-12-02T06:15:00Z\tmanager\t-\t-\t-\t-\tthe manager listens") {
		t.Errorf("manager line %q", lines[0])
	}
	if n := strings.Count(m["nodes/root@198.18.1.2_22.log"], "\n"); n != 2 {
		t.Errorf("the Linux node's log has %d lines, want 2", n)
	}
	if m["nodes/root@srv1_22.log"] != "" {
		t.Errorf("a node without events has a log: %q", m["nodes/root@srv1_22.log"])
	}
	if !strings.Contains(m["report.html"], testRunID) || strings.Contains(m["report.html"], "<script>") {
		t.Error("report.html is not the run's escaped deploy report")
	}

	// --output, and the errors.
	outFile := filepath.Join(t.TempDir(), "x.tgz")
	if code, _, errs := run(t, "", "logs", "--state-dir", dir, "--output", outFile, testRunID); code != ExitOK {
		t.Fatalf("--output: exit %d: %s", code, errs)
	}
	if len(readArchive(t, outFile)) != len(want) {
		t.Error("--output archive differs")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", "--state-dir", dir}, "which run?"},
		{[]string{"logs", "nope", "--state-dir", dir}, `run "nope" is not recorded`},
		{[]string{"logs", "latest", "--state-dir", t.TempDir()}, "no runs recorded in"},
	} {
		if code, _, errs := run(t, "", c.args...); code != ExitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errs, ExitUsage, c.want)
		}
	}
}

func TestSafeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"root@198.18.1.2:22", "root@198.18.1.2_22"},
		{"bmc://admin@[fd42:5e::2]:443", "bmc___admin@_fd42_5e__2__443"},
		{"../../etc/passwd", "____etc_passwd"},
		{"..", "_"},
		{".hidden", "hidden"},
		{"a\x00b\nc\x7f", "a_b_c_"},
		{"", "node"},
		{"/", "_"},
		{"C:\\Windows", "C__Windows"},
		{strings.Repeat("a", 300), strings.Repeat("a", 100)},
	}
	for _, tt := range tests {
		got := safeName(tt.in)
		if got != tt.want {
			t.Errorf("safeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !filepath.IsLocal(got) || strings.ContainsAny(got, "/\\:") || strings.Contains(got, "..") {
			t.Errorf("safeName(%q) = %q is not a plain name", tt.in, got)
		}
	}
}
