package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/wire"
)

// payloadInstaller records the payloads it is given.
type payloadInstaller struct{ got [][]byte }

func (*payloadInstaller) Kind() fleetup.Kind { return fleetup.KindScript }

func (*payloadInstaller) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	return fleetup.Probe{Applicable: true}, nil
}

func (p *payloadInstaller) Install(ctx context.Context, c *fleetup.Component, path string, opts installer.Options) (installer.Outcome, error) {
	b, err := os.ReadFile(path)
	p.got = append(p.got, b)
	return installer.Outcome{Version: c.Version}, err
}

// stringFetcher serves one payload, counting its calls.
type stringFetcher struct {
	body  string
	calls int
}

func (f *stringFetcher) Fetch(ctx context.Context, c *fleetup.Component, w io.Writer, progress func(int64)) error {
	f.calls++
	_, err := io.WriteString(w, f.body)
	return err
}

func pushComponent(body string) fleetup.Component {
	sum := sha256.Sum256([]byte(body))
	return fleetup.Component{ID: "dev.example.push", Version: "1.0", Kind: fleetup.KindScript, File: "push.cmd", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
}

func TestPushedFetcher(t *testing.T) {
	const body = "echo pushed\n"
	good := pushComponent(body)
	tests := []struct {
		name     string
		pushed   string // the file at payloads/<sha256>, "" for none
		depot    bool
		wantErr  string
		wantBody string
		wantNext int
	}{
		{name: "pushed", pushed: body, depot: true, wantBody: body},
		{name: "pushed, no depot", pushed: body, wantBody: body},
		{name: "not pushed: the depot", depot: true, wantBody: body, wantNext: 1},
		{name: "not pushed, no depot", wantErr: "was not pushed"},
		{name: "pushed file differs", pushed: "echo other\n", depot: true, wantErr: "refused before install"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := os.MkdirTemp("", "fleetup-push-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = removeAll(root) })
			pushed := filepath.Join(root, WinPushedDir)
			if err := os.Mkdir(pushed, 0o700); err != nil {
				t.Fatal(err)
			}
			if tt.pushed != "" {
				if err := os.WriteFile(filepath.Join(pushed, good.SHA256), []byte(tt.pushed), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			depot := &stringFetcher{body: body}
			f := &PushedFetcher{Dir: pushed}
			if tt.depot {
				f.Next = depot
			}
			inst := &payloadInstaller{}
			s := &Service{
				Node:       "n1",
				Installers: map[fleetup.Kind]installer.Installer{fleetup.KindScript: inst},
				Fetcher:    f,
				WorkDir:    filepath.Join(root, "work"),
			}
			res := s.Install(context.Background(), wire.InstallRequest{Items: []wire.InstallItem{{Component: good, Action: fleetup.ActionUpdate}}}, func(fleetup.Event) {})
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			if tt.wantErr != "" {
				if res[0].Phase != fleetup.PhaseFailed || !strings.Contains(res[0].Error, tt.wantErr) {
					t.Errorf("result %+v, want a failure with %q", res[0], tt.wantErr)
				}
				if len(inst.got) != 0 {
					t.Errorf("the installer got %q", inst.got)
				}
				return
			}
			if res[0].Phase != fleetup.PhaseInstalled {
				t.Fatalf("result %+v, want installed", res[0])
			}
			if len(inst.got) != 1 || !bytes.Equal(inst.got[0], []byte(tt.wantBody)) {
				t.Errorf("the installer got %q, want %q", inst.got, tt.wantBody)
			}
			if depot.calls != tt.wantNext {
				t.Errorf("the depot was asked %d times, want %d", depot.calls, tt.wantNext)
			}
		})
	}
}

func TestPushedFetcherRefusesBadNames(t *testing.T) {
	c := pushComponent("x")
	c.SHA256 = `..\..\config.json` + strings.Repeat("0", 47)
	f := &PushedFetcher{Dir: os.TempDir()}
	if err := f.Fetch(context.Background(), &c, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "was not pushed") {
		t.Errorf("a hash that is a path: %v, want it taken as not pushed", err)
	}
}

func TestServiceName(t *testing.T) {
	for in, want := range map[string]string{
		"20261202-061500-ab12cd":         "fleetup-20261202-061500-ab12cd",
		"cleanup-20261202-061500-AB12CD": "fleetup-cleanup-20261202-061500-ab12cd",
		"a_b.c":                          "fleetup-a-b-c",
	} {
		if got := ServiceName(in); got != want {
			t.Errorf("ServiceName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := WinDirName("20261202-061500-ab12cd"); got != "fleetup-20261202-061500-ab12cd" {
		t.Errorf("WinDirName = %q", got)
	}
}

// TestDownloadProgress: a download's progress is told at most every
// progressStep bytes, and always at its end.
func TestDownloadProgress(t *testing.T) {
	c := &fleetup.Component{Size: 3*progressStep + 10}
	var told []int64
	p := downloadProgress(c, func(n int64) { told = append(told, n) })
	for n := int64(1000); n < c.Size; n += 1000 {
		p(n)
	}
	p(c.Size)
	if len(told) == 0 || told[len(told)-1] != c.Size {
		t.Fatalf("told %v, want the end (%d) last", told, c.Size)
	}
	if len(told) > 5 {
		t.Errorf("told %d times for %d bytes: %v", len(told), c.Size, told)
	}
}
