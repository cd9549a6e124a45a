package baseline

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/fleetup/fleetup"
)

const (
	maxControl   = 1 << 20  // bytes of the control file
	maxControlGz = 64 << 20 // bytes read from control.tar, decompressed
	arMagic      = "!<arch>\n"
)

func loadDeb(path string) ([]*fleetup.Component, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctl, err := readDebControl(bufio.NewReader(f))
	if err != nil {
		return nil, err
	}
	c := &fleetup.Component{
		ID:            ctl["Package"],
		Name:          ctl["Package"],
		Version:       ctl["Version"],
		Kind:          fleetup.KindDeb,
		VersionFormat: "dpkg",
		Package:       ctl["Package"],
		Arch:          ctl["Architecture"],
		Targets:       []string{ctl["Package"]},
	}
	if d := ctl["Description"]; d != "" {
		c.Name = strings.TrimSpace(strings.SplitN(d, "\n", 2)[0])
	}
	if c.Name == "" {
		c.Name = c.Package
	}
	if err := payload(c, path); err != nil {
		return nil, err
	}
	return []*fleetup.Component{c}, nil
}

// readDebControl reads the control file of the .deb in r, in memory.
func readDebControl(r io.Reader) (Control, error) {
	var magic [8]byte
	if n, err := io.ReadFull(r, magic[:]); err != nil {
		if n == 0 {
			return nil, errors.New("empty file")
		}
		return nil, fmt.Errorf("deb: truncated ar header: %w", err)
	}
	if string(magic[:]) != arMagic {
		return nil, errors.New("deb: not an ar archive")
	}
	first := true
	for {
		var hdr [60]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil, errors.New("deb: no control.tar member")
			}
			return nil, fmt.Errorf("deb: truncated ar member header: %w", err)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, errors.New("deb: bad ar member header")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("deb: ar member %q has bad size %q", name, strings.TrimSpace(string(hdr[48:58])))
		}
		body := io.LimitReader(r, size)
		if first {
			if name != "debian-binary" {
				return nil, fmt.Errorf("deb: first member is %q, not debian-binary", name)
			}
			b, err := io.ReadAll(io.LimitReader(body, 16))
			if err != nil || len(b) < 4 || !strings.HasPrefix(string(b), "2.") {
				return nil, fmt.Errorf("deb: unsupported format version %q", b)
			}
			first = false
		} else if strings.HasPrefix(name, "control.tar") {
			return readControlTar(name, body, size)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return nil, fmt.Errorf("deb: truncated member %q: %w", name, err)
		}
		if size%2 == 1 {
			if _, err := io.ReadFull(r, make([]byte, 1)); err != nil && err != io.EOF {
				return nil, fmt.Errorf("deb: %w", err)
			}
		}
	}
}

func readControlTar(name string, body io.Reader, size int64) (Control, error) {
	var (
		tr  io.Reader
		err error
	)
	// Read the member fully first, so that a truncated archive is reported
	// as such and not as a decompression error.
	raw, err := io.ReadAll(io.LimitReader(body, min(size, maxControlGz)))
	if err != nil {
		return nil, fmt.Errorf("deb: read %s: %w", name, err)
	}
	if int64(len(raw)) < size {
		if size > maxControlGz {
			return nil, fmt.Errorf("deb: %s is larger than %d bytes", name, maxControlGz)
		}
		return nil, fmt.Errorf("deb: truncated archive: %s has %d of %d bytes", name, len(raw), size)
	}
	br := bytes.NewReader(raw)
	switch name {
	case "control.tar":
		tr = br
	case "control.tar.gz":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("deb: %s: %w", name, err)
		}
		tr = zr
	case "control.tar.xz":
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("deb: %s: %w", name, err)
		}
		tr = zr
	case "control.tar.zst":
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(maxControlGz), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("deb: %s: %w", name, err)
		}
		defer zr.Close()
		tr = zr
	default:
		return nil, fmt.Errorf("deb: unsupported control member %q", name)
	}
	t := tar.NewReader(io.LimitReader(tr, maxControlGz))
	for {
		h, err := t.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("deb: %s has no ./control", name)
		}
		if err != nil {
			return nil, fmt.Errorf("deb: %s: %w", name, err)
		}
		if h.Name != "./control" && h.Name != "control" {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("deb: %s: ./control is not a regular file", name)
		}
		data, err := io.ReadAll(io.LimitReader(t, maxControl+1))
		if err != nil {
			return nil, fmt.Errorf("deb: %s: %w", name, err)
		}
		if len(data) > maxControl {
			return nil, fmt.Errorf("deb: ./control is larger than %d bytes", maxControl)
		}
		return ParseControl(data)
	}
}

// Control is a parsed Debian control paragraph: field name to value;
// continuation lines are joined with "\n" (a lone "." stands for an empty
// line, as in Description).
type Control map[string]string

// ParseControl parses the control file of a binary package (one deb822
// paragraph) and checks the fields fleetup needs: Package, Version and
// Architecture.
func ParseControl(data []byte) (Control, error) {
	c := Control{}
	var last string
	for i, line := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			if len(c) > 0 {
				last = "" // end of the paragraph; anything after is ignored
				goto done
			}
			continue
		case strings.HasPrefix(line, "#"):
			continue
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("control line %d: continuation line without a field", i+1)
			}
			cont := strings.TrimSpace(line)
			if cont == "." {
				cont = ""
			}
			c[last] += "\n" + cont
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("control line %d: not a field: %q", i+1, truncate(line, 40))
		}
		if _, dup := c[k]; dup {
			return nil, fmt.Errorf("control line %d: duplicate field %q", i+1, k)
		}
		c[k] = strings.TrimSpace(v)
		last = k
	}
done:
	for _, f := range []string{"Package", "Version", "Architecture"} {
		if c[f] == "" {
			return nil, fmt.Errorf("control has no %s field", f)
		}
	}
	if err := checkPackageName(c["Package"]); err != nil {
		return nil, err
	}
	return c, nil
}

// checkPackageName applies Debian policy 5.6.1: lowercase letters,
// digits, + - and ., at least two characters, starting alphanumeric.
func checkPackageName(p string) error {
	if len(p) < 2 {
		return fmt.Errorf("package name %q is shorter than 2 characters", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '+' || c == '-' || c == '.')
		if !ok {
			return fmt.Errorf("package name %q: character %q not allowed", truncate(p, 40), c)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
