// Package baseline reads a baseline: a directory whose files are the
// components fleetup deploys. Each file is one kind of component:
//
//   - NAME.cab: fwupd firmware; the *.metainfo.xml members describe it,
//     and their content checksums must match the payload members.
//   - NAME.deb: a Debian package; only ./control of control.tar is read,
//     in memory, and nothing is ever extracted to disk.
//   - NAME.rpm: an RPM package; only its headers are read.
//   - NAME.component.toml: a script component, or (kind = "bmc") a BMC
//     firmware image; its manifest names the script or image (a file
//     beside it, which is not a component itself).
//
// Dotfiles and README* files are ignored; anything else is a problem.
//
// Load never stops at a bad component: each one becomes a Problem naming
// its file and the reason, and is left out of Components, so that a caller
// can report every problem of a baseline at once. Load fails only when the
// directory itself cannot be read.
//
// A manifest may list what its component requires ("base >= 2.0", see
// ParseRequirement). Load checks each requirement's version in the format
// of the component it names and refuses the components of a requires
// cycle; a requirement on an id the baseline does not have is allowed.
package baseline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/version"
)

// ManifestSuffix ends the name of a script component's manifest.
const ManifestSuffix = ".component.toml"

// Baseline is a loaded baseline directory.
type Baseline struct {
	Dir        string // absolute
	Components []*fleetup.Component
	Problems   []Problem
}

// Problem is a file of the baseline that is not a usable component.
type Problem struct {
	File   string // base name in the baseline directory
	Reason string
}

func (p Problem) Error() string { return p.File + ": " + p.Reason }

// Err returns nil when the baseline has no problems, else all of them
// joined.
func (b *Baseline) Err() error {
	errs := make([]error, len(b.Problems))
	for i, p := range b.Problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Component returns the component with id, or nil.
func (b *Baseline) Component(id string) *fleetup.Component {
	for _, c := range b.Components {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Load reads every component in dir.
func Load(dir string) (*Baseline, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load baseline %s: %w", dir, err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("load baseline: %w", err)
	}
	b := &Baseline{Dir: abs}
	problem := func(file, format string, args ...any) {
		b.Problems = append(b.Problems, Problem{File: file, Reason: fmt.Sprintf(format, args...)})
	}

	// Manifests first: the scripts they name are not components.
	scripts := map[string]string{} // script file -> manifest
	manifests := map[string]*Manifest{}
	for _, e := range entries {
		name := e.Name()
		if ignored(name) || !strings.HasSuffix(name, ManifestSuffix) {
			continue
		}
		data, err := readSmall(filepath.Join(abs, name), maxManifest)
		if err != nil {
			problem(name, "%v", err)
			continue
		}
		m, err := ParseManifest(data, name)
		if err != nil {
			problem(name, "%v", err)
			continue
		}
		manifests[name] = m
		if other, ok := scripts[m.payloadName()]; ok {
			problem(name, "%q is already used by %s", m.payloadName(), other)
			delete(manifests, name)
			continue
		}
		scripts[m.payloadName()] = name
	}

	type loaded struct {
		c   *fleetup.Component
		src string // the file the component was read from (the manifest, for scripts)
	}
	var comps []loaded
	for _, e := range entries {
		name := e.Name()
		if ignored(name) {
			continue
		}
		if _, ok := scripts[name]; ok {
			continue
		}
		path := filepath.Join(abs, name)
		var (
			cs  []*fleetup.Component
			err error
		)
		switch {
		case strings.HasSuffix(name, ManifestSuffix):
			m, ok := manifests[name]
			if !ok {
				continue // already a problem
			}
			cs, err = loadManifest(abs, name, m)
		case e.IsDir():
			err = errors.New("not a component: a directory")
		case strings.HasSuffix(name, ".cab"):
			cs, err = loadCab(path)
		case strings.HasSuffix(name, ".deb"):
			cs, err = loadDeb(path)
		case strings.HasSuffix(name, ".rpm"):
			cs, err = loadRPM(path)
		default:
			err = errors.New("not a component: unknown type")
		}
		if err != nil {
			problem(name, "%v", err)
			continue
		}
		for _, c := range cs {
			if err := version.Validate(c.VersionFormat, c.Version); err != nil {
				problem(name, "%v", err)
				continue
			}
			comps = append(comps, loaded{c, name})
		}
	}

	// Duplicate ids: every copy is a problem, none is deployable.
	byID := map[string][]loaded{}
	for _, l := range comps {
		byID[l.c.ID] = append(byID[l.c.ID], l)
	}
	var unique []loaded
	for _, l := range comps {
		dups := byID[l.c.ID]
		if len(dups) == 1 {
			unique = append(unique, l)
			continue
		}
		var others []string
		for _, d := range dups {
			if d.c != l.c {
				others = append(others, d.src)
			}
		}
		problem(l.src, "duplicate id %q (also in %s)", l.c.ID, strings.Join(others, ", "))
	}

	// Requires: versions in the right format, no cycles.
	cs := make([]*fleetup.Component, len(unique))
	for i, l := range unique {
		cs[i] = l.c
	}
	refused := checkRequires(cs)
	for i, l := range unique {
		if reasons, ok := refused[i]; ok {
			for _, r := range reasons {
				problem(l.src, "%s", r)
			}
			continue
		}
		b.Components = append(b.Components, l.c)
	}
	sort.SliceStable(b.Problems, func(i, j int) bool { return b.Problems[i].File < b.Problems[j].File })
	return b, nil
}

func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "README")
}

// payload fills in the fields every component takes from its payload file:
// File, Path, Size and SHA256, streaming the file through the hash.
func payload(c *fleetup.Component, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	c.File = filepath.Base(path)
	c.Path = path
	c.Size = n
	c.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// readSmall reads a file no larger than max.
func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}

// WriteTable prints the components of b as a table, then one line per
// problem. The last column, REQUIRES, lists a component's requires
// ("a >= 2.0, b"), "-" when it has none.
func WriteTable(w io.Writer, b *Baseline) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tVERSION\tKIND\tTARGETS\tSIZE\tSHA256\tREQUIRES")
	for _, c := range b.Components {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.ID, c.Name, c.Version, c.Kind,
			strings.Join(c.Targets, ","), c.Size, c.SHA256, requiresText(c))
	}
	tw.Flush()
	for _, p := range b.Problems {
		fmt.Fprintln(w, p.Error())
	}
}

// requiresText is a component's requires for the table: "a >= 2.0, b", or
// "-" when it has none.
func requiresText(c *fleetup.Component) string {
	if len(c.Requires) == 0 {
		return "-"
	}
	reqs := make([]string, len(c.Requires))
	for i, r := range c.Requires {
		reqs[i] = r.String()
	}
	return strings.Join(reqs, ", ")
}
