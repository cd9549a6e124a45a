package cabfile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// WriteFile is one member for Write.
type WriteFile struct {
	// Name must be a plain file name (see File.SafeName), at most 255
	// bytes, unique within the cabinet.
	Name string
	Data []byte
	// ModTime is stored with two-second precision; the zero time is
	// stored as 1980-01-01 00:00:00, so that output depends only on the
	// names and data.
	ModTime time.Time
}

// blockSize is how much data each CFDATA block of Write carries.
const blockSize = 32768

// Write writes an uncompressed, single-folder cabinet holding files, in
// order, with CFDATA checksums. Its output depends only on its input.
func Write(w io.Writer, files []WriteFile) error {
	seen := make(map[string]bool, len(files))
	if len(files) > 0xffff {
		return fmt.Errorf("write cabinet: %d files, at most 65535", len(files))
	}
	var total int64
	dirSize := int64(headerSize + folderSize)
	for _, f := range files {
		if _, err := (&File{Name: f.Name}).SafeName(); err != nil {
			return fmt.Errorf("write cabinet: %w", err)
		}
		if len(f.Name) >= maxNameLen || !utf8.ValidString(f.Name) {
			return fmt.Errorf("write cabinet: name %q is longer than %d bytes or not UTF-8", f.Name, maxNameLen-1)
		}
		if seen[f.Name] {
			return fmt.Errorf("write cabinet: duplicate name %q", f.Name)
		}
		seen[f.Name] = true
		total += int64(len(f.Data))
		dirSize += int64(fileSize + len(f.Name) + 1)
	}
	nBlocks := (total + blockSize - 1) / blockSize
	if nBlocks > 0xffff {
		return fmt.Errorf("write cabinet: %d bytes of data need %d blocks, at most 65535", total, nBlocks)
	}
	cabSize := dirSize + nBlocks*dataSize + total
	if cabSize > 0xffffffff {
		return fmt.Errorf("write cabinet: %d bytes exceeds the 4 GiB cabinet limit", cabSize)
	}

	bw := bufio.NewWriter(w)
	le := binary.LittleEndian
	var h [headerSize]byte
	copy(h[0:], "MSCF")
	le.PutUint32(h[8:], uint32(cabSize))
	le.PutUint32(h[16:], headerSize+folderSize) // coffFiles
	h[24], h[25] = 3, 1
	le.PutUint16(h[26:], 1) // one folder
	le.PutUint16(h[28:], uint16(len(files)))
	bw.Write(h[:])

	var fo [folderSize]byte
	le.PutUint32(fo[0:], uint32(dirSize))
	le.PutUint16(fo[4:], uint16(nBlocks))
	le.PutUint16(fo[6:], uint16(None))
	bw.Write(fo[:])

	var off uint32
	for _, f := range files {
		var fe [fileSize]byte
		le.PutUint32(fe[0:], uint32(len(f.Data)))
		le.PutUint32(fe[4:], off)
		le.PutUint16(fe[8:], 0)
		d, t := dosDateTime(f.ModTime)
		le.PutUint16(fe[10:], d)
		le.PutUint16(fe[12:], t)
		attr := uint16(0x20) // _A_ARCH
		for i := 0; i < len(f.Name); i++ {
			if f.Name[i] >= 0x80 {
				attr |= attrUTF8
				break
			}
		}
		le.PutUint16(fe[14:], attr)
		bw.Write(fe[:])
		bw.WriteString(f.Name)
		bw.WriteByte(0)
		off += uint32(len(f.Data))
	}

	// The data blocks: the files' bytes concatenated, cut in blockSize.
	block := make([]byte, 0, blockSize)
	flush := func() {
		var dh [dataSize]byte
		le.PutUint16(dh[4:], uint16(len(block)))
		le.PutUint16(dh[6:], uint16(len(block)))
		le.PutUint32(dh[0:], checksum(dh[4:8], checksum(block, 0)))
		bw.Write(dh[:])
		bw.Write(block)
		block = block[:0]
	}
	for _, f := range files {
		data := f.Data
		for len(data) > 0 {
			n := copy(block[len(block):blockSize], data)
			block = block[:len(block)+n]
			data = data[n:]
			if len(block) == blockSize {
				flush()
			}
		}
	}
	if len(block) > 0 {
		flush()
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write cabinet: %w", err)
	}
	return nil
}

func dosDateTime(t time.Time) (uint16, uint16) {
	if t.IsZero() || t.Year() < 1980 || t.Year() > 2107 {
		return 1<<5 | 1, 0 // 1980-01-01 00:00:00
	}
	d := uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm := uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return d, tm
}
