package cabfile

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/google/go-cmp/cmp"
)

func openBytes(t testing.TB, b []byte) *Cabinet {
	t.Helper()
	c, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func contents(t testing.TB, c *Cabinet) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, f := range c.Files {
		b, err := f.ReadAll(1 << 24)
		if err != nil {
			t.Fatalf("ReadAll %q: %v", f.Name, err)
		}
		if int64(len(b)) != f.Size {
			t.Fatalf("%q: read %d bytes, Size %d", f.Name, len(b), f.Size)
		}
		m[f.Name] = b
	}
	return m
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func testFiles() map[string][]byte {
	seq := &bytes.Buffer{}
	for i := 0; i < 20000; i++ {
		seq.WriteString(strings.Repeat("x", i%7) + "line\n")
	}
	return map[string][]byte{
		"a.txt":   []byte("hello\n"),
		"big.bin": randBytes(100000),
		"seq.txt": seq.Bytes(), // compressible: MSZIP blocks use the previous block as dictionary
		"empty":   {},
	}
}

// TestReadGcab reads cabinets made by gcab, stored and MSZIP-compressed.
func TestReadGcab(t *testing.T) {
	testenv.RequireTools(t, "gcab")
	want := testFiles()
	dir := t.TempDir()
	var names []string
	for n, b := range want {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"stored", nil},
		{"mszip", []string{"-z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cab := filepath.Join(t.TempDir(), "x.cab")
			args := append(append([]string{"-c"}, tc.flags...), cab)
			cmd := exec.Command("gcab", append(args, names...)...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("gcab: %v\n%s", err, out)
			}
			b, err := os.ReadFile(cab)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, contents(t, openBytes(t, b))); diff != "" {
				t.Errorf("contents differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadFwupdFixture(t *testing.T) {
	const path = "/usr/share/installed-tests/fwupd/fakedevice124.cab"
	b, err := os.ReadFile(path)
	if err != nil {
		testenv.Skip(t, "needs fwupd-tests: "+err.Error())
	}
	c := openBytes(t, b)
	got := contents(t, c)
	var names []string
	for _, f := range c.Files {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"fakedevice124.bin", "fakedevice124.jcat", "fakedevice124.metainfo.xml"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	bin, err := os.ReadFile("/usr/share/installed-tests/fwupd/fakedevice124.bin")
	if err == nil && !bytes.Equal(bin, got["fakedevice124.bin"]) {
		t.Errorf("fakedevice124.bin differs from the installed copy")
	}
	if !bytes.Contains(got["fakedevice124.metainfo.xml"], []byte("org.fwupd.fakedevice.firmware")) {
		t.Errorf("metainfo does not name the component")
	}
}

func TestWriteRoundTrip(t *testing.T) {
	want := testFiles()
	want["exact-block"] = randBytes(blockSize)
	want["naïve.txt"] = []byte("utf-8 name")
	var files []WriteFile
	for _, n := range []string{"a.txt", "big.bin", "empty", "seq.txt", "exact-block", "naïve.txt"} {
		files = append(files, WriteFile{Name: n, Data: want[n]})
	}
	var buf bytes.Buffer
	if err := Write(&buf, files); err != nil {
		t.Fatal(err)
	}
	c := openBytes(t, buf.Bytes())
	if diff := cmp.Diff(want, contents(t, c)); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got := c.Files[0].ModTime; !got.Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("zero ModTime stored as %v", got)
	}
	var again bytes.Buffer
	if err := Write(&again, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("Write is not deterministic")
	}

	// gcab must accept the output and extract the same bytes.
	if _, err := exec.LookPath("gcab"); err == nil {
		dir := t.TempDir()
		cab := filepath.Join(dir, "w.cab")
		os.WriteFile(cab, buf.Bytes(), 0o644)
		out, err := exec.Command("gcab", "-t", cab).CombinedOutput()
		if err != nil {
			t.Fatalf("gcab -t: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "big.bin") {
			t.Errorf("gcab -t output lacks big.bin:\n%s", out)
		}
		xdir := filepath.Join(dir, "x")
		os.Mkdir(xdir, 0o755)
		if out, err := exec.Command("gcab", "-x", "-C", xdir, cab).CombinedOutput(); err != nil {
			t.Fatalf("gcab -x: %v\n%s", err, out)
		}
		for n, b := range want {
			got, err := os.ReadFile(filepath.Join(xdir, n))
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("gcab extracted %q differently: %v", n, err)
			}
		}
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name  string
		files []WriteFile
		want  string
	}{
		{"slash", []WriteFile{{Name: "a/b"}}, "path separator"},
		{"backslash", []WriteFile{{Name: `a\b`}}, "path separator"},
		{"dotdot", []WriteFile{{Name: ".."}}, "directory"},
		{"empty", []WriteFile{{Name: ""}}, "empty name"},
		{"duplicate", []WriteFile{{Name: "a"}, {Name: "a"}}, `duplicate name "a"`},
		{"long", []WriteFile{{Name: strings.Repeat("n", 300)}}, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(io.Discard, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestSafeName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"firmware.bin", true}, {"a.metainfo.xml", true}, {"../etc/passwd", false}, {"/etc/passwd", false},
		{`dir\file`, false}, {"a..b", false}, {".", false}, {"", false}, {"a\x00b", false}, {"a\nb", false},
	} {
		_, err := (&File{Name: tc.name}).SafeName()
		if (err == nil) != tc.ok {
			t.Errorf("SafeName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafeName) {
			t.Errorf("SafeName(%q) error %v does not wrap ErrUnsafeName", tc.name, err)
		}
	}
}

// cabSpec describes a cabinet for the hand-built cases below.
type cabSpec struct {
	flags      uint16
	prev, next string
	comp       Compression
	files      []specFile
	blocks     [][]byte // stored data blocks; a nil entry ends the cabinet with a split block
	uncomp     []int    // uncompressed size per block; defaults to len(block)
	noChecksum bool
}

type specFile struct {
	name    string
	size    uint32
	offset  uint32
	iFolder uint16
}

func (s cabSpec) build() []byte {
	le := binary.LittleEndian
	var dir bytes.Buffer
	hdr := make([]byte, headerSize)
	copy(hdr, "MSCF")
	hdr[24], hdr[25] = 3, 1
	le.PutUint16(hdr[26:], 1)
	le.PutUint16(hdr[28:], uint16(len(s.files)))
	le.PutUint16(hdr[30:], s.flags)
	le.PutUint16(hdr[32:], 0x1234)
	dir.Write(hdr)
	if s.flags&flagPrev != 0 {
		dir.WriteString(s.prev + "\x00disk\x00")
	}
	if s.flags&flagNext != 0 {
		dir.WriteString(s.next + "\x00disk\x00")
	}
	folderAt := dir.Len()
	dir.Write(make([]byte, folderSize))
	le.PutUint32(dir.Bytes()[16:], uint32(dir.Len()))
	for _, f := range s.files {
		fe := make([]byte, fileSize)
		le.PutUint32(fe[0:], f.size)
		le.PutUint32(fe[4:], f.offset)
		le.PutUint16(fe[8:], f.iFolder)
		dir.Write(fe)
		dir.WriteString(f.name + "\x00")
	}
	b := dir.Bytes()
	le.PutUint32(b[folderAt:], uint32(len(b)))
	le.PutUint16(b[folderAt+4:], uint16(len(s.blocks)))
	le.PutUint16(b[folderAt+6:], uint16(s.comp))
	for i, blk := range s.blocks {
		dh := make([]byte, dataSize)
		u := len(blk)
		if s.uncomp != nil {
			u = s.uncomp[i]
		}
		le.PutUint16(dh[4:], uint16(len(blk)))
		le.PutUint16(dh[6:], uint16(u))
		if !s.noChecksum {
			le.PutUint32(dh[0:], checksum(dh[4:8], checksum(blk, 0)))
		}
		b = append(b, dh...)
		b = append(b, blk...)
	}
	le.PutUint32(b[8:], uint32(len(b)))
	return b
}

// TestOpenSet reads a file that spans two cabinets, with a data block split
// between them, as stored-folder cabinets of a set.
func TestOpenSet(t *testing.T) {
	a := []byte("first file\n")
	bdata := randBytes(3000)
	stream := append(append([]byte{}, a...), bdata...)
	// Blocks: [0:1000] in cab1, [1000:2000] split 500/500 across cabinets, [2000:] in cab2.
	cab1 := cabSpec{
		flags: flagNext, next: "two.cab",
		files: []specFile{
			{name: "a.txt", size: uint32(len(a)), offset: 0},
			{name: "b.bin", size: uint32(len(bdata)), offset: uint32(len(a)), iFolder: ifoldContinuedToNext},
		},
		blocks: [][]byte{stream[0:1000], stream[1000:1500]},
		uncomp: []int{1000, 0},
	}.build()
	cab2 := cabSpec{
		flags: flagPrev, prev: "one.cab",
		files: []specFile{
			{name: "b.bin", size: uint32(len(bdata)), offset: uint32(len(a)), iFolder: ifoldContinuedFromPrev},
		},
		blocks: [][]byte{stream[1500:2000], stream[2000:]},
		uncomp: []int{1000, len(stream) - 2000},
	}
	cab2.noChecksum = true // a split block's checksum covers only its own part; test the unchecked path too
	c2 := cab2.build()
	c, err := OpenSet([]Part{{bytes.NewReader(cab1), int64(len(cab1))}, {bytes.NewReader(c2), int64(len(c2))}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]byte{"a.txt": a, "b.bin": bdata}, contents(t, c)); diff != "" {
		t.Errorf("set contents (-want +got):\n%s", diff)
	}
	if c.SetID != 0x1234 || c.NextCabinet != "" {
		t.Errorf("SetID %#x NextCabinet %q", c.SetID, c.NextCabinet)
	}

	// Alone, the first cabinet refuses: its set is incomplete.
	if _, err := Open(bytes.NewReader(cab1), int64(len(cab1))); err == nil || !strings.Contains(err.Error(), `continues in "two.cab"`) {
		t.Errorf("Open(first of set) = %v, want incomplete-set error", err)
	}
	if _, err := Open(bytes.NewReader(c2), int64(len(c2))); err == nil || !strings.Contains(err.Error(), `previous cabinet "one.cab"`) {
		t.Errorf("Open(second of set) = %v, want missing-previous error", err)
	}
}

func TestMalformed(t *testing.T) {
	var good bytes.Buffer
	if err := Write(&good, []WriteFile{{Name: "f.bin", Data: randBytes(40000)}}); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	le := binary.LittleEndian
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte{}, g...)
		return f(b)
	}
	tests := []struct {
		name    string
		data    []byte
		openErr string
		readErr string
	}{
		{"empty", nil, "shorter than a cabinet header", ""},
		{"bad signature", mod(func(b []byte) []byte { copy(b, "MSCX"); return b }), `signature is "MSCX"`, ""},
		{"bad version", mod(func(b []byte) []byte { b[25] = 2; return b }), "version 2.3", ""},
		{"truncated", g[:len(g)-100], "header says the cabinet is", ""},
		{"size field lies", mod(func(b []byte) []byte { le.PutUint32(b[8:], 99); return b }), "header says the cabinet is 99 bytes", ""},
		{"file table past end", mod(func(b []byte) []byte { le.PutUint32(b[16:], 1<<30); return b }), "file table offset", ""},
		{"too many folders", mod(func(b []byte) []byte { le.PutUint16(b[26:], 60000); return b }), "folder entries do not fit", ""},
		{"too many files", mod(func(b []byte) []byte { le.PutUint16(b[28:], 60000); return b }), "file entries do not fit", ""},
		{"data offset past end", mod(func(b []byte) []byte { le.PutUint32(b[36:], 1<<30); return b }), "do not fit in the cabinet", ""},
		{"too many blocks", mod(func(b []byte) []byte { le.PutUint16(b[40:], 500); return b }), "data block 2 (8 bytes) extends past the end", ""},
		{"file past folder", mod(func(b []byte) []byte { le.PutUint32(b[44:], 1<<20); return b }), `file "f.bin" (1048576 bytes at folder offset 0) ends past its folder's 40000 bytes`, ""},
		{"bad folder index", mod(func(b []byte) []byte { le.PutUint16(b[52:], 3); return b }), `file "f.bin" is in folder 3, but there are 1 folders`, ""},
		{"name not terminated", mod(func(b []byte) []byte {
			b = b[:60]
			le.PutUint16(b[40:], 0)
			b = append(b, bytes.Repeat([]byte("x"), 300)...)
			le.PutUint32(b[8:], uint32(len(b)))
			return b
		}), "not NUL-terminated", ""},
		{"continued without previous", mod(func(b []byte) []byte { le.PutUint16(b[52:], ifoldContinuedFromPrev); return b }), "continues from a previous cabinet, but there is none", ""},
		{"lzx", mod(func(b []byte) []byte { le.PutUint16(b[42:], 3); return b }), "", "unsupported compression: LZX"},
		{"quantum", mod(func(b []byte) []byte { le.PutUint16(b[42:], 2); return b }), "", "unsupported compression: Quantum"},
		{"bad checksum", mod(func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }), "", "checksum"},
		{"mszip without CK", mod(func(b []byte) []byte { le.PutUint16(b[42:], 1); return b }), "", `MSZIP block does not start with "CK"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(bytes.NewReader(tc.data), int64(len(tc.data)))
			if tc.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.openErr) {
					t.Fatalf("Open = %v, want error containing %q", err, tc.openErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			_, err = c.Files[0].ReadAll(1 << 20)
			if err == nil || !strings.Contains(err.Error(), tc.readErr) {
				t.Fatalf("ReadAll = %v, want error containing %q", err, tc.readErr)
			}
			if strings.Contains(tc.readErr, "unsupported") && !errors.Is(err, ErrUnsupportedCompression) {
				t.Errorf("error %v does not wrap ErrUnsupportedCompression", err)
			}
		})
	}
}

func TestReadAllCap(t *testing.T) {
	var buf bytes.Buffer
	Write(&buf, []WriteFile{{Name: "f", Data: make([]byte, 1000)}})
	c := openBytes(t, buf.Bytes())
	if _, err := c.Files[0].ReadAll(999); err == nil || !strings.Contains(err.Error(), "exceeds the limit of 999") {
		t.Errorf("ReadAll(999) = %v", err)
	}
}

// FuzzOpen opens arbitrary bytes as a cabinet and reads every member,
// capped so that a hostile size field cannot make the fuzzer allocate much.
func FuzzOpen(f *testing.F) {
	var buf bytes.Buffer
	// Small seeds: the fuzzer minimizes every interesting input, which is
	// slow for inputs of many kilobytes.
	Write(&buf, []WriteFile{{Name: "a", Data: []byte("hello")}, {Name: "b", Data: bytes.Repeat([]byte("xy"), 100)}})
	f.Add(buf.Bytes())
	f.Add(cabSpec{flags: flagNext, next: "n.cab", files: []specFile{{name: "c", size: 9, iFolder: ifoldContinuedToNext}}, blocks: [][]byte{[]byte("abc")}, uncomp: []int{0}}.build())
	f.Add(cabSpec{comp: MSZIP, files: []specFile{{name: "z", size: 5}}, blocks: [][]byte{append([]byte("CK"), 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00)}, uncomp: []int{5}}.build())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		budget := int64(1 << 22) // bytes decoded across all members
		for _, file := range c.Files {
			if budget <= 0 {
				break
			}
			file.SafeName()
			r, err := file.Open()
			if err != nil {
				continue
			}
			n, _ := io.Copy(io.Discard, io.LimitReader(r, budget))
			budget -= n + file.offset
			if n > file.Size {
				t.Fatalf("%q: read %d bytes, more than its size %d", file.Name, n, file.Size)
			}
		}
	})
}
