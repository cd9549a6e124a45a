package baseline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/fleetup/fleetup/cabfile"
)

// cabWith writes a cabinet of the given members (name -> contents).
func cabWith(t *testing.T, dir, file string, members map[string]string) string {
	t.Helper()
	var names []string
	for n := range members {
		names = append(names, n)
	}
	sort.Strings(names)
	var files []cabfile.WriteFile
	for _, n := range names {
		files = append(files, cabfile.WriteFile{Name: n, Data: []byte(members[n])})
	}
	var buf bytes.Buffer
	if err := cabfile.Write(&buf, files); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func metainfoXML(id, version, guid, file, sha256 string) string {
	return fmt.Sprintf(`<?xml version="1.0"?>
<component type="firmware">
  <id>%s</id>
  <provides><firmware type="flashed">%s</firmware></provides>
  <releases>
    <release version="0.9.0"><checksum type="sha256" filename="old.bin" target="content">00</checksum></release>
    <release version="%s"><checksum type="sha256" filename="%s" target="content">%s</checksum></release>
  </releases>
</component>`, id, guid, version, file, sha256)
}
