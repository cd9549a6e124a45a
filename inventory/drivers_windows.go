package inventory

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// The Device.Plugin of what Drivers and BIOS find.
const (
	PluginDriver = "driver"
	PluginBIOS   = "bios"
)

// Drivers collects the node's device drivers from the device classes'
// driver keys (ClassKey\{class GUID}\NNNN): one Device per key with a
// DriverVersion. ID is `{class GUID}\NNNN`, Name the DriverDesc, Vendor the
// ProviderName, Version the DriverVersion, GUIDs the MatchingDeviceId (the
// hardware id the driver was chosen for, e.g. "pci\ven_8086&dev_1572"),
// Plugin PluginDriver.
type Drivers struct{ Registry Registry }

var _ Collector = (*Drivers)(nil)

// Name returns "drivers".
func (*Drivers) Name() string { return "drivers" }

// Collect replaces inv's devices of PluginDriver.
func (d *Drivers) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	k, err := d.Registry.Open(ClassKey)
	if IsNotExist(err) {
		replaceDevices(inv, PluginDriver, nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf(`HKLM\%s: %w`, ClassKey, err)
	}
	classes, err := subKeys(k)
	k.Close()
	if err != nil {
		return fmt.Errorf(`HKLM\%s: %w`, ClassKey, err)
	}
	var devs []fleetup.Device
	for _, class := range classes {
		if err := ctx.Err(); err != nil {
			return err
		}
		ck, err := d.Registry.Open(ClassKey + `\` + class)
		if err != nil {
			continue // a class key only the system may read ("Properties")
		}
		insts, _ := subKeys(ck)
		ck.Close()
		for _, inst := range insts {
			if !isInstanceKey(inst) {
				continue
			}
			ik, err := d.Registry.Open(ClassKey + `\` + class + `\` + inst)
			if err != nil {
				continue
			}
			dev := fleetup.Device{
				ID:      class + `\` + inst,
				Name:    regString(ik, "DriverDesc"),
				Vendor:  regString(ik, "ProviderName"),
				Version: regString(ik, "DriverVersion"),
				Plugin:  PluginDriver,
				GUIDs:   []string{},
			}
			if id := regString(ik, "MatchingDeviceId"); id != "" {
				dev.GUIDs = append(dev.GUIDs, id)
			}
			ik.Close()
			if dev.Version != "" {
				devs = append(devs, dev)
			}
		}
	}
	replaceDevices(inv, PluginDriver, devs)
	return nil
}

// isInstanceKey reports whether name is a driver key of a class: four
// decimal digits ("0000").
func isInstanceKey(name string) bool {
	if len(name) != 4 {
		return false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// BIOS collects the system firmware's version from BIOSKey as one Device:
// ID "bios", Name "BIOS" followed by the system's manufacturer and
// product when known ("BIOS of HPE ProLiant DL380 Gen10"), Vendor the
// BIOSVendor, Version the BIOSVersion, Plugin PluginBIOS.
type BIOS struct{ Registry Registry }

var _ Collector = (*BIOS)(nil)

// Name returns "bios".
func (*BIOS) Name() string { return "bios" }

// Collect replaces inv's device of PluginBIOS. A node whose registry
// has no BIOS key (a virtual machine without SMBIOS) adds nothing.
func (b *BIOS) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	k, err := b.Registry.Open(BIOSKey)
	if IsNotExist(err) {
		replaceDevices(inv, PluginBIOS, nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf(`HKLM\%s: %w`, BIOSKey, err)
	}
	defer k.Close()
	dev := fleetup.Device{ID: "bios", Name: "BIOS", Vendor: regString(k, "BIOSVendor"), Version: strings.TrimSpace(regString(k, "BIOSVersion")), Plugin: PluginBIOS, GUIDs: []string{}}
	if sys := strings.TrimSpace(regString(k, "SystemManufacturer") + " " + regString(k, "SystemProductName")); sys != "" {
		dev.Name += " of " + sys
	}
	var devs []fleetup.Device
	if dev.Version != "" {
		devs = append(devs, dev)
	}
	replaceDevices(inv, PluginBIOS, devs)
	return nil
}

// replaceDevices drops inv's devices of plugin and appends devs.
func replaceDevices(inv *fleetup.Inventory, plugin string, devs []fleetup.Device) {
	kept := inv.Devices[:0:0]
	for _, d := range inv.Devices {
		if d.Plugin != plugin {
			kept = append(kept, d)
		}
	}
	inv.Devices = append(kept, devs...)
}
