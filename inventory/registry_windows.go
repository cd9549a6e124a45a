package inventory

import (
	"errors"
	"strconv"

	"golang.org/x/sys/windows/registry"
)

// Registry is where the Windows collectors read the registry: the node's
// HKEY_LOCAL_MACHINE when zero. Tests point it at a copy of the keys the
// collectors read, kept under another key (Root) and path (Prefix), so
// they never depend on or change the machine's own keys.
type Registry struct {
	// Root is the predefined key paths start from; registry.LOCAL_MACHINE
	// when 0.
	Root registry.Key
	// Prefix, when set, is put before every path, with a backslash
	// ("Software\fleetup-test\HKLM").
	Prefix string
}

// Paths the Windows collectors read, relative to HKEY_LOCAL_MACHINE.
const (
	CurrentVersionKey = `SOFTWARE\Microsoft\Windows NT\CurrentVersion`
	UninstallKey      = `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`
	UninstallKey32    = `SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall`
	PackagesKey       = `SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages`
	ClassKey          = `SYSTEM\CurrentControlSet\Control\Class`
	BIOSKey           = `HARDWARE\DESCRIPTION\System\BIOS`
)

// Open opens path (relative to HKEY_LOCAL_MACHINE) for reading. The caller
// closes the key. A key that does not exist is an error for which
// IsNotExist is true.
func (g Registry) Open(path string) (registry.Key, error) {
	root := g.Root
	if root == 0 {
		root = registry.LOCAL_MACHINE
	}
	if g.Prefix != "" {
		path = g.Prefix + `\` + path
	}
	return registry.OpenKey(root, path, registry.QUERY_VALUE|registry.ENUMERATE_SUB_KEYS)
}

// IsNotExist reports whether err says a key or value does not exist.
func IsNotExist(err error) bool { return errors.Is(err, registry.ErrNotExist) }

// regString returns k's value name as a string: a string value as it is
// (REG_EXPAND_SZ not expanded), an integer in decimal, "" when absent or of
// another type.
func regString(k registry.Key, name string) string {
	if s, _, err := k.GetStringValue(name); err == nil {
		return s
	}
	if n, _, err := k.GetIntegerValue(name); err == nil {
		return strconv.FormatUint(n, 10)
	}
	return ""
}

// regInt returns k's integer value name and whether it is there.
func regInt(k registry.Key, name string) (uint64, bool) {
	n, _, err := k.GetIntegerValue(name)
	return n, err == nil
}

// subKeys lists k's subkeys.
func subKeys(k registry.Key) ([]string, error) { return k.ReadSubKeyNames(-1) }
