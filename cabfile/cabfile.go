// Package cabfile reads and writes Microsoft Cabinet files (MS-CAB), the
// container fwupd and the LVFS use for firmware. It is written by hand from
// the MS-CAB specification because no maintained Go cabinet library is
// available through the project's module proxy.
//
// The reader handles uncompressed and MSZIP folders and cabinet sets that
// span several files (OpenSet); LZX and Quantum folders are listed but
// refuse to open, with an error naming the compression. Every length and
// offset read from the input is checked against the input's size before it
// is used, and decoding streams block by block (at most 64 KiB at a time),
// so a hostile cabinet can neither crash the reader nor make it allocate
// more than its own size.
//
// Member names are names, never paths: nothing in this package touches the
// file system, and File.SafeName refuses names a caller must not join to a
// directory (separators, "..", NUL).
//
// The writer (Write) produces single-file, uncompressed cabinets that
// fwupdtool and gcab accept.
package cabfile

import (
	"errors"
	"fmt"
)

// Compression is a folder's compression method (typeCompress & 0x000f).
type Compression uint16

// The compression methods of MS-CAB.
const (
	None    Compression = 0
	MSZIP   Compression = 1
	Quantum Compression = 2
	LZX     Compression = 3
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case MSZIP:
		return "MSZIP"
	case Quantum:
		return "Quantum"
	case LZX:
		return "LZX"
	}
	return fmt.Sprintf("unknown compression %d", uint16(c))
}

// ErrUnsupportedCompression is wrapped by File.Open for LZX, Quantum and
// unknown compression methods.
var ErrUnsupportedCompression = errors.New("unsupported compression")

// ErrUnsafeName is wrapped by SafeName for names that are not plain names.
var ErrUnsafeName = errors.New("unsafe member name")

// FormatError reports a malformed cabinet: what is wrong and where.
type FormatError struct {
	Offset int64 // byte offset in the cabinet the problem was found at
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("malformed cabinet at offset %d: %s", e.Offset, e.Msg)
}

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// checksum is the CFDATA checksum of MS-CAB: the XOR of the data's 32-bit
// little-endian words, the tail bytes packed big-end first, seeded with
// seed.
func checksum(data []byte, seed uint32) uint32 {
	c := seed
	n := len(data) / 4 * 4
	for i := 0; i < n; i += 4 {
		c ^= uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
	}
	var ul uint32
	switch len(data) & 3 {
	case 3:
		ul = uint32(data[n])<<16 | uint32(data[n+1])<<8 | uint32(data[n+2])
	case 2:
		ul = uint32(data[n])<<8 | uint32(data[n+1])
	case 1:
		ul = uint32(data[n])
	}
	return c ^ ul
}
