package baseline

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/cabfile"
	"github.com/fleetup/fleetup/version"
)

const (
	maxMetainfo = 1 << 20  // bytes of one metainfo member
	maxManifest = 64 << 10 // bytes of a script manifest
)

// metainfo is the part of an AppStream firmware component fleetup reads.
type metainfo struct {
	XMLName  xml.Name `xml:"component"`
	Type     string   `xml:"type,attr"`
	ID       string   `xml:"id"`
	Name     string   `xml:"name"`
	Provides struct {
		Firmware []struct {
			Type string `xml:"type,attr"`
			GUID string `xml:",chardata"`
		} `xml:"firmware"`
	} `xml:"provides"`
	Custom struct {
		Values []struct {
			Key   string `xml:"key,attr"`
			Value string `xml:",chardata"`
		} `xml:"value"`
	} `xml:"custom"`
	Releases struct {
		Release []release `xml:"release"`
	} `xml:"releases"`
}

type release struct {
	Version   string `xml:"version,attr"`
	Checksums []struct {
		Type     string `xml:"type,attr"`
		Filename string `xml:"filename,attr"`
		Target   string `xml:"target,attr"`
		Value    string `xml:",chardata"`
	} `xml:"checksum"`
}

func loadCab(path string) ([]*fleetup.Component, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, errors.New("empty file")
	}
	cab, err := cabfile.Open(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("fwupd cabinet: %w", err)
	}
	members := map[string]*cabfile.File{}
	var metas []*cabfile.File
	for _, m := range cab.Files {
		members[m.Name] = m
		if strings.HasSuffix(m.Name, ".metainfo.xml") {
			metas = append(metas, m)
		}
	}
	if len(metas) == 0 {
		return nil, errors.New("fwupd cabinet has no *.metainfo.xml member")
	}
	var out []*fleetup.Component
	for _, m := range metas {
		c, err := componentFromMetainfo(m, members)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		if err := payload(c, path); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func componentFromMetainfo(m *cabfile.File, members map[string]*cabfile.File) (*fleetup.Component, error) {
	data, err := m.ReadAll(maxMetainfo)
	if err != nil {
		return nil, err
	}
	mi, err := parseMetainfo(data)
	if err != nil {
		return nil, err
	}
	c := &fleetup.Component{
		ID:            mi.ID,
		Name:          strings.TrimSpace(mi.Name),
		Kind:          fleetup.KindFwupd,
		VersionFormat: "plain",
	}
	for _, v := range mi.Custom.Values {
		if v.Key == "LVFS::VersionFormat" {
			c.VersionFormat = strings.TrimSpace(v.Value)
		}
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	for _, fw := range mi.Provides.Firmware {
		if fw.Type == "flashed" {
			c.Targets = append(c.Targets, strings.ToLower(strings.TrimSpace(fw.GUID)))
		}
	}
	if len(c.Targets) == 0 {
		return nil, errors.New(`no <provides><firmware type="flashed"> device GUID`)
	}
	rel, err := newestRelease(mi.Releases.Release, c.VersionFormat)
	if err != nil {
		return nil, err
	}
	c.Version = rel.Version
	if err := checkContent(rel, members); err != nil {
		return nil, err
	}
	return c, nil
}

// parseMetainfo decodes a metainfo document and checks what fleetup needs.
func parseMetainfo(data []byte) (*metainfo, error) {
	var mi metainfo
	if err := xml.Unmarshal(data, &mi); err != nil {
		return nil, fmt.Errorf("bad metainfo XML: %w", err)
	}
	mi.ID = strings.TrimSpace(mi.ID)
	if mi.Type != "" && mi.Type != "firmware" {
		return nil, fmt.Errorf("component type is %q, not \"firmware\"", mi.Type)
	}
	if mi.ID == "" {
		return nil, errors.New("metainfo has no <id>")
	}
	if err := checkID(mi.ID); err != nil {
		return nil, err
	}
	if len(mi.Releases.Release) == 0 {
		return nil, errors.New("metainfo has no <release>")
	}
	return &mi, nil
}

// newestRelease returns the release with the highest version in format.
func newestRelease(rels []release, format string) (*release, error) {
	var best *release
	for i := range rels {
		r := &rels[i]
		r.Version = strings.TrimSpace(r.Version)
		if r.Version == "" {
			return nil, fmt.Errorf("release %d has no version", i+1)
		}
		if best == nil {
			best = r
			continue
		}
		cmp, err := version.Compare(format, r.Version, best.Version)
		if err != nil {
			return nil, err
		}
		if cmp > 0 {
			best = r
		}
	}
	return best, nil
}

// checkContent verifies the release's content checksums against the
// cabinet's members.
func checkContent(rel *release, members map[string]*cabfile.File) error {
	n := 0
	for _, cs := range rel.Checksums {
		if cs.Target != "content" {
			continue
		}
		name := strings.TrimSpace(cs.Filename)
		if name == "" {
			return fmt.Errorf("release %s: content checksum has no filename", rel.Version)
		}
		var h hash.Hash
		switch cs.Type {
		case "sha1":
			h = sha1.New()
		case "sha256":
			h = sha256.New()
		default:
			continue // fwupd ignores the others too
		}
		m, ok := members[name]
		if !ok {
			return fmt.Errorf("release %s: firmware file %q is not in the cabinet", rel.Version, name)
		}
		r, err := m.Open()
		if err != nil {
			return err
		}
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		got := hex.EncodeToString(h.Sum(nil))
		want := strings.ToLower(strings.TrimSpace(cs.Value))
		if got != want {
			return fmt.Errorf("release %s: %s of %q is %s, metainfo says %s", rel.Version, cs.Type, name, got, want)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf(`release %s has no sha1 or sha256 <checksum target="content"> naming its firmware file`, rel.Version)
	}
	return nil
}

// checkID accepts reverse-DNS style ids and package names: letters,
// digits and ._+-, not starting with a punctuation mark.
func checkID(id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '.' || c == '_' || c == '-' || c == '+')
		if !ok {
			return fmt.Errorf("id %q: character %q not allowed (letters, digits, '.', '_', '-', '+')", id, c)
		}
	}
	if len(id) > 255 {
		return fmt.Errorf("id %q is longer than 255 bytes", id[:32]+"...")
	}
	return nil
}
