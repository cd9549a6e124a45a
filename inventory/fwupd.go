package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// ErrNoDevices is returned by ParseFwupdDevices when fwupd reports that it
// detected no devices at all (its "No detected devices" error).
var ErrNoDevices = errors.New("fwupd detected no devices")

// Fwupd collects the firmware devices fwupd sees, through
// "fwupdtool get-devices --json" (NO_COLOR=1), which needs no daemon.
type Fwupd struct {
	// Plugins, when set, limits fwupdtool to these plugins (--plugins).
	Plugins []string
}

var _ Collector = (*Fwupd)(nil)

// Name returns "fwupd".
func (*Fwupd) Name() string { return "fwupd" }

// Collect replaces inv.Devices with fwupd's devices. Without fwupdtool on
// PATH it does nothing; a node where fwupd detects no device gets none and
// no error.
func (f *Fwupd) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	if !proc.LookPath("fwupdtool") {
		return nil
	}
	args := []string{"get-devices", "--json"}
	if len(f.Plugins) > 0 {
		args = append(args, "--plugins", strings.Join(f.Plugins, ","))
	}
	res, runErr := withEnv(r, "NO_COLOR=1").Run(ctx, nil, "fwupdtool", args...)
	if ctx.Err() != nil {
		return fmt.Errorf("fwupdtool get-devices: %w", runErr)
	}
	var stdout, stderr []byte
	if res != nil {
		stdout, stderr = res.Stdout, res.Stderr
	}
	devs, err := ParseFwupdDevices(stdout)
	if err != nil && !errors.Is(err, ErrNoDevices) && len(stderr) > 0 {
		// Some versions print the JSON on stderr, among their progress.
		if d2, err2 := ParseFwupdDevices(append(append([]byte{}, stdout...), stderr...)); err2 == nil || errors.Is(err2, ErrNoDevices) {
			devs, err = d2, err2
		}
	}
	switch {
	case errors.Is(err, ErrNoDevices):
		inv.Devices = nil
		return nil
	case err == nil:
		inv.Devices = devs
		return nil
	case runErr != nil:
		return fmt.Errorf("fwupdtool get-devices: %w", runErr)
	default:
		return fmt.Errorf("fwupdtool get-devices: %w", err)
	}
}

// fwupdOutput is the part of fwupd's --json output that fleetup reads.
type fwupdOutput struct {
	Devices *[]fwupdDevice `json:"Devices"`
	Error   *struct {
		Domain  string `json:"Domain"`
		Code    int    `json:"Code"`
		Message string `json:"Message"`
	} `json:"Error"`
}

type fwupdDevice struct {
	DeviceID      string   `json:"DeviceId"`
	Name          string   `json:"Name"`
	Vendor        string   `json:"Vendor"`
	GUIDs         []string `json:"Guid"`
	Version       string   `json:"Version"`
	VersionFormat string   `json:"VersionFormat"`
	Plugin        string   `json:"Plugin"`
	Flags         []string `json:"Flags"`
}

// fwupdErrorNothingToDo is FWUPD_ERROR_NOTHING_TO_DO of fwupd's FwupdError
// domain.
const fwupdErrorNothingToDo = 9

// maxJSONTries bounds how many '{' ParseFwupdDevices tries as the start of
// the JSON document.
const maxJSONTries = 256

// ParseFwupdDevices finds the JSON document in fwupd's output (which some
// versions surround with progress lines and warnings) and returns its
// devices: GUIDs lowercased, Updatable from the "updatable" flag. Devices
// without a DeviceId are left out. It returns ErrNoDevices for fwupd's
// "No detected devices" error document (FwupdError code 9, whatever the
// message), an error carrying fwupd's message
// for any other error document, and an error when no JSON object with
// Devices or Error is found.
func ParseFwupdDevices(out []byte) ([]fleetup.Device, error) {
	doc, err := findFwupdJSON(out)
	if err != nil {
		return nil, err
	}
	if doc.Devices == nil {
		e := doc.Error
		// The code decides, not the message (which fwupd translates):
		// FWUPD_ERROR_NOTHING_TO_DO is what fwupd answers when it detects
		// no device.
		if e.Code == fwupdErrorNothingToDo && (e.Domain == "" || e.Domain == "FwupdError") {
			return nil, ErrNoDevices
		}
		return nil, fmt.Errorf("fwupd error %d: %s", e.Code, clip(e.Message))
	}
	var devs []fleetup.Device
	for _, d := range *doc.Devices {
		if d.DeviceID == "" {
			continue
		}
		dev := fleetup.Device{
			ID:            d.DeviceID,
			Name:          d.Name,
			Vendor:        d.Vendor,
			GUIDs:         []string{},
			Version:       d.Version,
			VersionFormat: d.VersionFormat,
			Plugin:        d.Plugin,
		}
		for _, g := range d.GUIDs {
			dev.GUIDs = append(dev.GUIDs, strings.ToLower(strings.TrimSpace(g)))
		}
		for _, fl := range d.Flags {
			if fl == "updatable" {
				dev.Updatable = true
			}
		}
		devs = append(devs, dev)
	}
	return devs, nil
}

// findFwupdJSON returns the first JSON object in out that has a Devices
// list or an Error object.
func findFwupdJSON(out []byte) (*fwupdOutput, error) {
	var firstErr error
	rest, off := out, 0
	for tries := 0; tries < maxJSONTries; tries++ {
		i := bytes.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		var doc fwupdOutput
		dec := json.NewDecoder(bytes.NewReader(rest[i:]))
		err := dec.Decode(&doc)
		if err == nil && (doc.Devices != nil || doc.Error != nil) {
			return &doc, nil
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("at byte %d: %w", off+i, err)
		}
		rest, off = rest[i+1:], off+i+1
	}
	if firstErr != nil {
		return nil, fmt.Errorf("no fwupd JSON document with Devices or Error in %d bytes of output (first attempt %v)", len(out), firstErr)
	}
	return nil, fmt.Errorf("no fwupd JSON document with Devices or Error in %d bytes of output", len(out))
}
