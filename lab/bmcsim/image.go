package bmcsim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// imageMagic starts the header line of every image a BMC accepts.
const imageMagic = "FLEETUP-BMCSIM-IMAGE"

// maxHeader is the longest header line a BMC reads.
const maxHeader = 1024

// Image makes an image for target (a FirmwareInventory member's Name, Id or
// SoftwareId, or the Manager's Model) carrying version: the header line
//
//	FLEETUP-BMCSIM-IMAGE target=<target> version=<version>\n
//
// followed by body. target must not contain " version=", and neither may
// contain a line break or other control characters; Image panics otherwise.
func Image(target, version string, body []byte) []byte {
	if strings.Contains(target, " version=") || !printable(target) || !printable(version) || target == "" || version == "" {
		panic(fmt.Sprintf("bmcsim.Image: unusable target %q or version %q", target, version))
	}
	h := imageMagic + " target=" + target + " version=" + version + "\n"
	return append([]byte(h), body...)
}

func printable(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// imageHeader is what an image's header line says.
type imageHeader struct {
	target, version string
}

// errNoHeader says an image has no usable header line.
var errNoHeader = errors.New("no " + imageMagic + " header line")

// parseImageHeader parses an image's first line, without its line feed.
func parseImageHeader(line string) (imageHeader, error) {
	line = strings.TrimSuffix(line, "\r")
	rest, ok := strings.CutPrefix(line, imageMagic+" target=")
	if !ok {
		return imageHeader{}, errNoHeader
	}
	target, version, ok := strings.Cut(rest, " version=")
	if !ok || target == "" || version == "" || !printable(target) || !printable(version) {
		return imageHeader{}, fmt.Errorf("malformed %s header line", imageMagic)
	}
	return imageHeader{target: target, version: version}, nil
}

// readImage reads an image from r to its end, keeping only the header:
// images are streamed, never held in memory. progress, if not nil, is
// called with the bytes read so far as they arrive. It returns the header
// (or why there is none: herr), the bytes read and the error that ended
// reading early (an interrupted transfer), if any.
func readImage(r io.Reader, progress func(int64)) (h imageHeader, herr error, n int64, err error) {
	cr := &countingReader{r: r, progress: progress}
	br := bufio.NewReaderSize(cr, maxHeader)
	line, rerr := br.ReadSlice('\n')
	switch {
	case rerr == nil:
		h, herr = parseImageHeader(string(line[:len(line)-1]))
	case errors.Is(rerr, bufio.ErrBufferFull):
		herr = errNoHeader
	case errors.Is(rerr, io.EOF):
		herr = errNoHeader
		return h, herr, cr.n, nil
	default:
		return h, errNoHeader, cr.n, rerr
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return h, herr, cr.n, err
	}
	return h, herr, cr.n, nil
}

// countingReader counts what passes through it.
type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 && c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}
