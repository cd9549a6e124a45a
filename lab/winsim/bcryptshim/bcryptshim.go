// Package bcryptshim makes bcryptprimitives.dll for Wine 8, which lacks
// it: a 64-bit Windows DLL without code whose one export, ProcessPrng, is
// forwarded to advapi32.SystemFunction036 (RtlGenRandom). Go 1.26 programs
// for Windows import ProcessPrng at start and do not run under Wine without
// it.
//
// Put the DLL into a prefix's drive_c/windows/system32 (Install does). The
// file in this directory, bcryptprimitives.dll, is DLL()'s output, kept for
// scripts (scripts/wine/go_windows_amd64_exec); make it again with
//
//	go run ./lab/winsim/bcryptshim/mkshim -o lab/winsim/bcryptshim/bcryptprimitives.dll
package bcryptshim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// Name is the DLL's file name.
const Name = "bcryptprimitives.dll"

const (
	fileAlign    = 0x200
	sectAlign    = 0x1000
	exportRVA    = 0x1000
	imageBase    = 0x180000000
	optionalSize = 240
)

// DLL returns the DLL's bytes. They are the same on every call.
func DLL() []byte {
	const export, forward = "ProcessPrng", "advapi32.SystemFunction036"
	// The .edata section: export directory, address, name and ordinal
	// tables, then the strings. The forwarder string must lie inside the
	// export directory's range, which is how a loader tells a forwarder
	// from code.
	const (
		dirSize   = 40
		eatOff    = dirSize
		namesOff  = eatOff + 4
		ordsOff   = namesOff + 4
		stringOff = ordsOff + 4 // 2 bytes of ordinal, 2 of padding
	)
	var strs bytes.Buffer
	dllNameOff := stringOff + strs.Len()
	strs.WriteString(Name + "\x00")
	exportNameOff := stringOff + strs.Len()
	strs.WriteString(export + "\x00")
	forwardOff := stringOff + strs.Len()
	strs.WriteString(forward + "\x00")

	sect := make([]byte, stringOff)
	le := binary.LittleEndian
	le.PutUint32(sect[12:], uint32(exportRVA+dllNameOff)) // Name
	le.PutUint32(sect[16:], 1)                            // Base
	le.PutUint32(sect[20:], 1)                            // NumberOfFunctions
	le.PutUint32(sect[24:], 1)                            // NumberOfNames
	le.PutUint32(sect[28:], exportRVA+eatOff)             // AddressOfFunctions
	le.PutUint32(sect[32:], exportRVA+namesOff)           // AddressOfNames
	le.PutUint32(sect[36:], exportRVA+ordsOff)            // AddressOfNameOrdinals
	le.PutUint32(sect[eatOff:], uint32(exportRVA+forwardOff))
	le.PutUint32(sect[namesOff:], uint32(exportRVA+exportNameOff))
	le.PutUint16(sect[ordsOff:], 0)
	sect = append(sect, strs.Bytes()...)
	rawSize := alignUp(len(sect), fileAlign)

	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, le, v) }
	// DOS header: only e_magic and e_lfanew matter.
	dos := make([]byte, 64)
	copy(dos, "MZ")
	le.PutUint32(dos[0x3c:], 64)
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	// COFF header.
	w(uint16(0x8664))                   // Machine: AMD64
	w(uint16(1))                        // NumberOfSections
	w(uint32(0))                        // TimeDateStamp: 0, for reproducible output
	w(uint32(0))                        // PointerToSymbolTable
	w(uint32(0))                        // NumberOfSymbols
	w(uint16(optionalSize))             // SizeOfOptionalHeader
	w(uint16(0x2000 | 0x0020 | 0x0002)) // DLL | LARGE_ADDRESS_AWARE | EXECUTABLE_IMAGE
	// Optional header, PE32+.
	w(uint16(0x20b))
	w(uint8(14))
	w(uint8(0))
	w(uint32(0))                                         // SizeOfCode
	w(uint32(rawSize))                                   // SizeOfInitializedData
	w(uint32(0))                                         // SizeOfUninitializedData
	w(uint32(0))                                         // AddressOfEntryPoint: none, no DllMain
	w(uint32(exportRVA))                                 // BaseOfCode
	w(uint64(imageBase))                                 // ImageBase
	w(uint32(sectAlign))                                 // SectionAlignment
	w(uint32(fileAlign))                                 // FileAlignment
	w([6]uint16{6, 0, 0, 0, 6, 0})                       // OS, image and subsystem versions
	w(uint32(0))                                         // Win32VersionValue
	w(uint32(exportRVA + alignUp(len(sect), sectAlign))) // SizeOfImage
	w(uint32(fileAlign))                                 // SizeOfHeaders
	w(uint32(0))                                         // CheckSum
	w(uint16(3))                                         // Subsystem: console
	w(uint16(0x0100))                                    // DllCharacteristics: NX_COMPAT
	w([4]uint64{0x100000, 0x1000, 0x100000, 0x1000})     // stack and heap
	w(uint32(0))                                         // LoaderFlags
	w(uint32(16))                                        // NumberOfRvaAndSizes
	dirs := make([]uint32, 32)
	dirs[0], dirs[1] = exportRVA, uint32(len(sect)) // the export directory
	w(dirs)
	// Section header.
	var name [8]byte
	copy(name[:], ".edata")
	w(name)
	w(uint32(len(sect)))  // VirtualSize
	w(uint32(exportRVA))  // VirtualAddress
	w(uint32(rawSize))    // SizeOfRawData
	w(uint32(fileAlign))  // PointerToRawData
	w([2]uint32{})        // relocations, line numbers
	w([2]uint16{})        // their counts
	w(uint32(0x40000040)) // INITIALIZED_DATA | MEM_READ
	b.Write(make([]byte, fileAlign-b.Len()))
	b.Write(sect)
	b.Write(make([]byte, rawSize-len(sect)))
	return b.Bytes()
}

// Install writes the DLL into the system32 directory of the Wine prefix
// prefix.
func Install(prefix string) error {
	dir := filepath.Join(prefix, "drive_c", "windows", "system32")
	if err := WriteFile(filepath.Join(dir, Name)); err != nil {
		return fmt.Errorf("install %s into %s: %w", Name, prefix, err)
	}
	return nil
}

// WriteFile writes the DLL to path (write, then rename).
func WriteFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, DLL(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }
