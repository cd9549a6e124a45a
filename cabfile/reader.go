package cabfile

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	headerSize  = 36
	folderSize  = 8
	fileSize    = 16
	dataSize    = 8
	maxBlock    = 32768 + 6144 // MSZIP blocks uncompress to at most 32 KiB; allow slack for other writers
	maxNameLen  = 256          // CB_MAX_FILENAME
	flagPrev    = 0x0001
	flagNext    = 0x0002
	flagReserve = 0x0004
	attrUTF8    = 0x80

	ifoldContinuedFromPrev    = 0xfffd
	ifoldContinuedToNext      = 0xfffe
	ifoldContinuedPrevAndNext = 0xffff
)

// Cabinet is an opened cabinet or cabinet set.
type Cabinet struct {
	// Files lists the members in the order the cabinet stores them; a
	// member that spans cabinets of a set appears once.
	Files []*File
	// SetID and Index are the set identifier and this cabinet's index in
	// its set (of the first cabinet, for a set).
	SetID uint16
	Index uint16
	// PrevCabinet and NextCabinet name the neighbours of a cabinet that
	// belongs to a set (of the first and last cabinet, for OpenSet), empty
	// when there is none. They are names only, never opened by this package.
	PrevCabinet string
	NextCabinet string

	folders []*folder
}

// File is one member of a cabinet.
type File struct {
	// Name is the member's name as stored, decoded from UTF-8 or Latin-1.
	// It is a name, not a path: see SafeName.
	Name    string
	Size    int64
	ModTime time.Time // local time as stored, without a zone (UTC)
	Attribs uint16

	folder *folder
	offset int64 // uncompressed offset in the folder
}

type folder struct {
	comp   Compression
	blocks []block
	total  int64 // sum of the blocks' uncompressed sizes
}

// block is one CFDATA block; a block split across cabinets has several
// segments.
type block struct {
	segs    []segment
	uncomp  int
	csums   []uint32
	checked bool // whether csums apply (no reserved bytes in any segment)
	hdrs    [][4]byte
}

type segment struct {
	r   io.ReaderAt
	off int64
	n   int
}

// Part is one cabinet of a set, for OpenSet.
type Part struct {
	R    io.ReaderAt
	Size int64
}

// Open reads the directory of the cabinet of size bytes in r. The data is
// read later, by File.Open. Open fails with a *FormatError for a malformed
// cabinet, and for a cabinet that continues a file from a previous cabinet
// (use OpenSet for sets).
func Open(r io.ReaderAt, size int64) (*Cabinet, error) {
	return OpenSet([]Part{{R: r, Size: size}})
}

// OpenSet opens a cabinet set given in order, first cabinet first, and
// joins folders and files that continue from one cabinet into the next.
func OpenSet(parts []Part) (*Cabinet, error) {
	if len(parts) == 0 {
		return nil, errors.New("open cabinet set: no cabinets")
	}
	c := &Cabinet{}
	var pending []*File // files that continue into the next cabinet
	for i, p := range parts {
		cab, err := readCabinet(p.R, p.Size)
		if err != nil {
			if len(parts) > 1 {
				return nil, fmt.Errorf("cabinet %d of set: %w", i+1, err)
			}
			return nil, err
		}
		if i == 0 {
			c.SetID, c.Index, c.PrevCabinet = cab.setID, cab.index, cab.prev
			if cab.flags&flagPrev != 0 {
				return nil, fmt.Errorf("cabinet continues from previous cabinet %q, which was not given", cab.prev)
			}
		} else {
			if cab.flags&flagPrev == 0 {
				return nil, fmt.Errorf("cabinet %d of set does not continue a previous cabinet", i+1)
			}
			if cab.setID != c.SetID {
				return nil, fmt.Errorf("cabinet %d of set has set id %d, want %d", i+1, cab.setID, c.SetID)
			}
		}
		c.NextCabinet = cab.next
		if i == len(parts)-1 && cab.flags&flagNext != 0 {
			return nil, fmt.Errorf("cabinet set is incomplete: continues in %q, which was not given", cab.next)
		}
		// Join this cabinet's first folder to the last one of the set so far.
		folders := cab.folders
		if i > 0 && len(pending) > 0 {
			if len(folders) == 0 {
				return nil, fmt.Errorf("cabinet %d of set has no folder to continue", i+1)
			}
			last := c.folders[len(c.folders)-1]
			first := folders[0]
			if first.comp != last.comp {
				return nil, fmt.Errorf("cabinet %d of set continues a %s folder with %s", i+1, last.comp, first.comp)
			}
			joinFolders(last, first)
			for _, f := range cab.files {
				if f.folderIndex == 0 {
					f.f.folder = last
				}
			}
			folders = folders[1:]
		} else if cab.anyContinued {
			return nil, fmt.Errorf("cabinet %d of set continues files, but the previous cabinet does not", i+1)
		}
		c.folders = append(c.folders, folders...)
		pending = pending[:0]
		for _, f := range cab.files {
			switch f.iFolder {
			case ifoldContinuedFromPrev, ifoldContinuedPrevAndNext:
				// Listed already by the cabinet where it starts.
				if f.iFolder == ifoldContinuedPrevAndNext {
					pending = append(pending, f.f)
				}
				continue
			case ifoldContinuedToNext:
				pending = append(pending, f.f)
			}
			c.Files = append(c.Files, f.f)
		}
	}
	for _, f := range c.Files {
		if f.offset+f.Size > f.folder.total && f.folder.blocks != nil && f.folder.comp <= MSZIP {
			return nil, fmt.Errorf("file %q: ends at %d, past its folder's %d bytes", f.Name, f.offset+f.Size, f.folder.total)
		}
	}
	return c, nil
}

func joinFolders(last, first *folder) {
	if n := len(last.blocks); n > 0 && last.blocks[n-1].uncomp == 0 && len(first.blocks) > 0 {
		// The last block was split: glue its halves.
		b := &last.blocks[n-1]
		nb := first.blocks[0]
		b.segs = append(b.segs, nb.segs...)
		b.uncomp = nb.uncomp
		b.checked = false
		last.total += int64(nb.uncomp)
		first.blocks = first.blocks[1:]
	}
	for _, b := range first.blocks {
		last.blocks = append(last.blocks, b)
		last.total += int64(b.uncomp)
	}
}

type rawFile struct {
	f           *File
	iFolder     uint16
	folderIndex int
}

type rawCabinet struct {
	flags        uint16
	setID, index uint16
	prev, next   string
	folders      []*folder
	files        []rawFile
	anyContinued bool
}

// readAt reads exactly len(buf) bytes at off, as a FormatError when the
// cabinet is too short.
func readAt(r io.ReaderAt, size, off int64, buf []byte, what string) error {
	if off < 0 || off > size || int64(len(buf)) > size-off {
		return formatErr(off, "%s (%d bytes) extends past the end of the cabinet (%d bytes)", what, len(buf), size)
	}
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %s at offset %d: %w", what, off, err)
}

// readString reads a NUL-terminated string of at most maxNameLen bytes.
func readString(r io.ReaderAt, size, off int64, what string) (string, int64, error) {
	buf := make([]byte, maxNameLen+1)
	n := int64(len(buf))
	if size-off < n {
		n = size - off
	}
	if n <= 0 {
		return "", 0, formatErr(off, "%s starts past the end of the cabinet", what)
	}
	if err := readAt(r, size, off, buf[:n], what); err != nil {
		return "", 0, err
	}
	i := bytes.IndexByte(buf[:n], 0)
	if i < 0 {
		return "", 0, formatErr(off, "%s is not NUL-terminated within %d bytes", what, maxNameLen)
	}
	return string(buf[:i]), int64(i + 1), nil
}

func readCabinet(r io.ReaderAt, size int64) (*rawCabinet, error) {
	var h [headerSize]byte
	if size < headerSize {
		return nil, formatErr(0, "file is %d bytes, shorter than a cabinet header (%d)", size, headerSize)
	}
	if err := readAt(r, size, 0, h[:], "header"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if string(h[0:4]) != "MSCF" {
		return nil, formatErr(0, "signature is %q, not \"MSCF\"", h[0:4])
	}
	cbCabinet := int64(le.Uint32(h[8:]))
	coffFiles := int64(le.Uint32(h[16:]))
	minor, major := h[24], h[25]
	cFolders := int(le.Uint16(h[26:]))
	cFiles := int(le.Uint16(h[28:]))
	cab := &rawCabinet{flags: le.Uint16(h[30:]), setID: le.Uint16(h[32:]), index: le.Uint16(h[34:])}
	if major != 1 || minor != 3 {
		return nil, formatErr(24, "version %d.%d, want 1.3", major, minor)
	}
	if cbCabinet != size {
		return nil, formatErr(8, "header says the cabinet is %d bytes, but it is %d", cbCabinet, size)
	}
	if cFolders == 0 && cFiles > 0 {
		return nil, formatErr(26, "%d files but no folders", cFiles)
	}
	off := int64(headerSize)
	var cbFolderRes, cbDataRes int
	if cab.flags&flagReserve != 0 {
		var res [4]byte
		if err := readAt(r, size, off, res[:], "reserve sizes"); err != nil {
			return nil, err
		}
		cbHeaderRes := int64(le.Uint16(res[0:]))
		cbFolderRes, cbDataRes = int(res[2]), int(res[3])
		off += 4 + cbHeaderRes
		if off > size {
			return nil, formatErr(36, "header reserve of %d bytes extends past the end", cbHeaderRes)
		}
	}
	if cab.flags&flagPrev != 0 {
		s, n, err := readString(r, size, off, "previous cabinet name")
		if err != nil {
			return nil, err
		}
		cab.prev = s
		off += n
		if _, n, err = readString(r, size, off, "previous disk name"); err != nil {
			return nil, err
		}
		off += n
	}
	if cab.flags&flagNext != 0 {
		s, n, err := readString(r, size, off, "next cabinet name")
		if err != nil {
			return nil, err
		}
		cab.next = s
		off += n
		if _, n, err = readString(r, size, off, "next disk name"); err != nil {
			return nil, err
		}
		off += n
	}
	// Folders.
	if int64(cFolders)*int64(folderSize+cbFolderRes) > size-off {
		return nil, formatErr(off, "%d folder entries do not fit in the cabinet", cFolders)
	}
	totalBlocks := int64(0)
	for i := 0; i < cFolders; i++ {
		var fb [folderSize]byte
		if err := readAt(r, size, off, fb[:], fmt.Sprintf("folder %d", i)); err != nil {
			return nil, err
		}
		start := int64(le.Uint32(fb[0:]))
		nData := int(le.Uint16(fb[4:]))
		fo := &folder{comp: Compression(le.Uint16(fb[6:]) & 0x000f)}
		// Folders' data do not overlap, so all their block headers together
		// fit in the cabinet; this bounds the work a hostile header causes.
		totalBlocks += int64(nData)
		if totalBlocks*int64(dataSize+cbDataRes) > size {
			return nil, formatErr(off, "folder %d: the folders' %d data blocks cannot fit in the cabinet", i, totalBlocks)
		}
		if err := readBlocks(r, size, start, nData, cbDataRes, fo, i); err != nil {
			return nil, err
		}
		cab.folders = append(cab.folders, fo)
		off += int64(folderSize + cbFolderRes)
	}
	// Files.
	if coffFiles < off || coffFiles > size {
		return nil, formatErr(16, "file table offset %d is outside the cabinet's directory (%d..%d)", coffFiles, off, size)
	}
	off = coffFiles
	if int64(cFiles)*(fileSize+1) > size-off {
		return nil, formatErr(off, "%d file entries do not fit in the cabinet", cFiles)
	}
	for i := 0; i < cFiles; i++ {
		var fb [fileSize]byte
		if err := readAt(r, size, off, fb[:], fmt.Sprintf("file entry %d", i)); err != nil {
			return nil, err
		}
		name, n, err := readString(r, size, off+fileSize, fmt.Sprintf("name of file entry %d", i))
		if err != nil {
			return nil, err
		}
		f := &File{
			Size:    int64(le.Uint32(fb[0:])),
			offset:  int64(le.Uint32(fb[4:])),
			ModTime: dosTime(le.Uint16(fb[10:]), le.Uint16(fb[12:])),
			Attribs: le.Uint16(fb[14:]),
		}
		f.Name = decodeName(name, f.Attribs&attrUTF8 != 0)
		iFolder := le.Uint16(fb[8:])
		idx := int(iFolder)
		switch iFolder {
		case ifoldContinuedFromPrev, ifoldContinuedPrevAndNext:
			idx = 0
			cab.anyContinued = true
			if cab.flags&flagPrev == 0 {
				return nil, formatErr(off+8, "file %q continues from a previous cabinet, but there is none", f.Name)
			}
		case ifoldContinuedToNext:
			idx = cFolders - 1
			if cab.flags&flagNext == 0 {
				return nil, formatErr(off+8, "file %q continues into a next cabinet, but there is none", f.Name)
			}
		}
		if iFolder == ifoldContinuedPrevAndNext && cab.flags&flagNext == 0 {
			return nil, formatErr(off+8, "file %q continues into a next cabinet, but there is none", f.Name)
		}
		if idx < 0 || idx >= cFolders {
			return nil, formatErr(off+8, "file %q is in folder %d, but there are %d folders", f.Name, idx, cFolders)
		}
		f.folder = cab.folders[idx]
		if iFolder < ifoldContinuedFromPrev && f.offset+f.Size > f.folder.total && cab.flags&flagNext == 0 && f.folder.comp <= MSZIP {
			return nil, formatErr(off, "file %q (%d bytes at folder offset %d) ends past its folder's %d bytes", f.Name, f.Size, f.offset, f.folder.total)
		}
		cab.files = append(cab.files, rawFile{f: f, iFolder: iFolder, folderIndex: idx})
		off += fileSize + n
	}
	return cab, nil
}

func readBlocks(r io.ReaderAt, size, off int64, n, res int, fo *folder, idx int) error {
	le := binary.LittleEndian
	if off > size || int64(n)*int64(dataSize+res) > size-off {
		return formatErr(off, "folder %d: %d data blocks at offset %d do not fit in the cabinet", idx, n, off)
	}
	for i := 0; i < n; i++ {
		var hb [dataSize]byte
		what := fmt.Sprintf("folder %d data block %d", idx, i)
		if err := readAt(r, size, off, hb[:], what); err != nil {
			return err
		}
		cbData := int(le.Uint16(hb[4:]))
		cbUncomp := int(le.Uint16(hb[6:]))
		dataOff := off + dataSize + int64(res)
		if dataOff > size || int64(cbData) > size-dataOff {
			return formatErr(off, "%s: %d bytes of data extend past the end of the cabinet", what, cbData)
		}
		if cbUncomp > maxBlock {
			return formatErr(off+6, "%s: uncompressed size %d exceeds %d", what, cbUncomp, maxBlock)
		}
		if cbUncomp == 0 && i != n-1 {
			return formatErr(off+6, "%s: uncompressed size 0 is allowed only for the last block of a cabinet", what)
		}
		var hdr [4]byte
		copy(hdr[:], hb[4:8])
		fo.blocks = append(fo.blocks, block{
			segs:    []segment{{r: r, off: dataOff, n: cbData}},
			uncomp:  cbUncomp,
			csums:   []uint32{le.Uint32(hb[0:])},
			hdrs:    [][4]byte{hdr},
			checked: res == 0,
		})
		fo.total += int64(cbUncomp)
		off = dataOff + int64(cbData)
	}
	return nil
}

func dosTime(d, t uint16) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Date(int(d>>9)+1980, time.Month(d>>5&0x0f), int(d&0x1f),
		int(t>>11), int(t>>5&0x3f), int(t&0x1f)*2, 0, time.UTC)
}

func decodeName(s string, isUTF8 bool) string {
	if isUTF8 || utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 }) {
		return s
	}
	// Not flagged UTF-8: the bytes are Latin-1.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// SafeName returns the member's name if it is a plain file name a caller
// may use inside a directory it controls: not empty, no '/' or '\\'
// separators, not "." or "..", no "..", no NUL or control characters.
// Otherwise it returns an error wrapping ErrUnsafeName that names it.
func (f *File) SafeName() (string, error) {
	n := f.Name
	switch {
	case n == "":
		return "", fmt.Errorf("%w: empty name", ErrUnsafeName)
	case strings.ContainsAny(n, `/\`):
		return "", fmt.Errorf("%w %q: contains a path separator", ErrUnsafeName, n)
	case strings.Contains(n, ".."), n == ".":
		return "", fmt.Errorf("%w %q: refers to a directory", ErrUnsafeName, n)
	case strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", fmt.Errorf("%w %q: contains control characters", ErrUnsafeName, n)
	}
	return n, nil
}

// Open returns a reader of the member's contents. Data is decoded as it is
// read; errors in the cabinet's data (bad checksum, corrupt MSZIP stream,
// data ending early) come from Read. Open fails at once for LZX, Quantum
// and unknown compression.
func (f *File) Open() (io.Reader, error) {
	if f.folder.comp != None && f.folder.comp != MSZIP {
		return nil, fmt.Errorf("open %q: %w: %s", f.Name, ErrUnsupportedCompression, f.folder.comp)
	}
	fr := &folderReader{f: f.folder, name: f.Name}
	if f.offset > 0 {
		if _, err := io.CopyN(io.Discard, fr, f.offset); err != nil {
			return nil, fmt.Errorf("open %q: skip to offset %d of its folder: %w", f.Name, f.offset, err)
		}
	}
	return &memberReader{r: fr, left: f.Size, name: f.Name}, nil
}

// ReadAll reads the whole member, refusing members larger than max bytes
// before reading anything.
func (f *File) ReadAll(max int64) ([]byte, error) {
	if f.Size > max {
		return nil, fmt.Errorf("read %q: %d bytes exceeds the limit of %d", f.Name, f.Size, max)
	}
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, min(f.Size, 1<<20))
	b := bytes.NewBuffer(buf)
	if _, err := io.Copy(b, r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type memberReader struct {
	r    io.Reader
	left int64
	name string
}

func (m *memberReader) Read(p []byte) (int, error) {
	if m.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := m.r.Read(p)
	m.left -= int64(n)
	if err == io.EOF && m.left > 0 {
		err = fmt.Errorf("read %q: folder data ends %d bytes before the end of the file: %w", m.name, m.left, io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// folderReader decodes a folder's blocks in order.
type folderReader struct {
	f     *folder
	name  string
	next  int
	out   []byte // current block's uncompressed data
	pos   int
	dict  []byte // previous block's output, for MSZIP
	inbuf []byte
}

func (fr *folderReader) Read(p []byte) (int, error) {
	for fr.pos >= len(fr.out) {
		if fr.next >= len(fr.f.blocks) {
			return 0, io.EOF
		}
		if err := fr.decode(fr.next); err != nil {
			return 0, fmt.Errorf("read %q: data block %d: %w", fr.name, fr.next, err)
		}
		fr.next++
	}
	n := copy(p, fr.out[fr.pos:])
	fr.pos += n
	return n, nil
}

func (fr *folderReader) decode(i int) error {
	b := fr.f.blocks[i]
	if b.uncomp == 0 {
		return errors.New("block continues in a cabinet that was not given")
	}
	total := 0
	for _, s := range b.segs {
		total += s.n
	}
	in := fr.inbuf[:0]
	if cap(in) < total {
		in = make([]byte, 0, total)
	}
	for k, s := range b.segs {
		seg := in[len(in) : len(in)+s.n]
		n, err := s.r.ReadAt(seg, s.off)
		if n < s.n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read at offset %d: %w", s.off, err)
		}
		if b.checked && b.csums[k] != 0 {
			if got := checksum(b.hdrs[k][:], checksum(seg, 0)); got != b.csums[k] {
				return fmt.Errorf("checksum %#08x, want %#08x", got, b.csums[k])
			}
		}
		in = in[:len(in)+s.n]
	}
	fr.inbuf = in
	switch fr.f.comp {
	case None:
		if total != b.uncomp {
			return fmt.Errorf("stored block has %d bytes, header says %d", total, b.uncomp)
		}
		fr.out = append(fr.out[:0], in...)
	case MSZIP:
		if len(in) < 2 || in[0] != 'C' || in[1] != 'K' {
			return errors.New(`MSZIP block does not start with "CK"`)
		}
		zr := flate.NewReaderDict(bytes.NewReader(in[2:]), fr.dict)
		out := make([]byte, b.uncomp)
		if _, err := io.ReadFull(zr, out); err != nil {
			return fmt.Errorf("MSZIP: %w", err)
		}
		fr.out = out
		fr.dict = out
	}
	fr.pos = 0
	return nil
}
