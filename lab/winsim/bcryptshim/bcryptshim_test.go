package bcryptshim

import (
	"bytes"
	"debug/pe"
	"os"
	"testing"
)

func TestDLL(t *testing.T) {
	dll := DLL()
	f, err := pe.NewFile(bytes.NewReader(dll))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 || f.Characteristics&pe.IMAGE_FILE_DLL == 0 {
		t.Errorf("machine %#x characteristics %#x: want an AMD64 DLL", f.Machine, f.Characteristics)
	}
	s := f.Section(".edata")
	if s == nil {
		t.Fatal("no .edata section")
	}
	data, _ := s.Data()
	for _, want := range []string{"bcryptprimitives.dll\x00", "ProcessPrng\x00", "advapi32.SystemFunction036\x00"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf(".edata lacks %q", want)
		}
	}
	kept, err := os.ReadFile(Name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kept, dll) {
		t.Errorf("%s differs from DLL(): run go run ./lab/winsim/bcryptshim/mkshim -o lab/winsim/bcryptshim/%s", Name, Name)
	}
}
