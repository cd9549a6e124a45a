package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The fake device of fwupd's test plugin that every node has.
const (
	FwupdDeviceName    = "Integrated Webcam"
	FwupdDeviceGUID    = "b585990a-003e-5270-89d5-3705a17f9a43"
	FwupdDeviceVersion = "1.2.2" // its version at the start of every fwupdtool run
)

// FwupdUpdateState is fwupd's FwupdUpdateState: how an update ended.
type FwupdUpdateState int

// fwupd's update states.
const (
	FwupdStateUnknown         FwupdUpdateState = 0
	FwupdStatePending         FwupdUpdateState = 1
	FwupdStateSuccess         FwupdUpdateState = 2
	FwupdStateFailed          FwupdUpdateState = 3
	FwupdStateNeedsReboot     FwupdUpdateState = 4
	FwupdStateFailedTransient FwupdUpdateState = 5
)

func (s FwupdUpdateState) String() string {
	switch s {
	case FwupdStateUnknown:
		return "unknown"
	case FwupdStatePending:
		return "pending"
	case FwupdStateSuccess:
		return "success"
	case FwupdStateFailed:
		return "failed"
	case FwupdStateNeedsReboot:
		return "needs-reboot"
	case FwupdStateFailedTransient:
		return "failed-transient"
	}
	return "state-" + strconv.Itoa(int(s))
}

// FwupdRelease is one entry of a node's fwupd history: one flash.
type FwupdRelease struct {
	Device        string   // device name, e.g. "Integrated Webcam"
	DeviceID      string   // fwupd's device id
	GUIDs         []string // the device's GUIDs
	Plugin        string
	VersionBefore string // the device's version before the flash
	Version       string // the version flashed
	AppstreamID   string // the release's component id
	State         FwupdUpdateState
	Error         string    // fwupd's UpdateError, if any
	Created       time.Time // when the history entry was made (second precision)
}

// FwupdHistory returns the node's fwupd history, oldest first, as
// "fwupdtool get-history --json" run on the node reports it.
func (n *Node) FwupdHistory(ctx context.Context) ([]FwupdRelease, error) {
	// With no history fwupdtool exits 2 and prints a JSON error "No
	// history"; parseFwupdHistory turns that into an empty history.
	out, _, runErr := n.run(ctx, nil, false, "fwupdtool", "get-history", "--json")
	h, err := parseFwupdHistory(out)
	if err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("fwupd history: %w", runErr)
		}
		return nil, fmt.Errorf("%s: fwupd history: %w", n.Name, err)
	}
	return h, nil
}

// fwupdErrorNothingToDo is FWUPD_ERROR_NOTHING_TO_DO, fwupdtool's error
// code for "No history".
const fwupdErrorNothingToDo = 9

// parseFwupdHistory parses the output of "fwupdtool get-history --json".
// The JSON error fwupdtool prints when there is no history is an empty
// history; any other error object is an error.
func parseFwupdHistory(out []byte) ([]FwupdRelease, error) {
	start := bytes.IndexByte(out, '{')
	if start < 0 {
		return nil, fmt.Errorf("no JSON object in get-history output %q", truncate(out, 200))
	}
	var doc struct {
		Error *struct {
			Domain  string
			Code    int
			Message string
		}
		Devices []struct {
			Name        string
			DeviceID    string `json:"DeviceId"`
			GUID        []string
			Plugin      string
			Version     string
			Created     int64
			UpdateState int
			UpdateError string
			Releases    []struct {
				AppstreamID string `json:"AppstreamId"`
				Version     string
			}
		}
	}
	if err := json.Unmarshal(out[start:], &doc); err != nil {
		return nil, fmt.Errorf("get-history JSON: %w", err)
	}
	if e := doc.Error; e != nil {
		if e.Code == fwupdErrorNothingToDo && e.Message == "No history" {
			return nil, nil
		}
		return nil, fmt.Errorf("get-history: %s error %d: %s", e.Domain, e.Code, e.Message)
	}
	var rs []FwupdRelease
	for i, d := range doc.Devices {
		if d.Name == "" {
			return nil, fmt.Errorf("get-history JSON: device %d has no Name", i)
		}
		r := FwupdRelease{
			Device:        d.Name,
			DeviceID:      d.DeviceID,
			GUIDs:         d.GUID,
			Plugin:        d.Plugin,
			VersionBefore: d.Version,
			State:         FwupdUpdateState(d.UpdateState),
			Error:         d.UpdateError,
		}
		if d.Created != 0 {
			r.Created = time.Unix(d.Created, 0).UTC()
		}
		if len(d.Releases) > 0 {
			r.Version = d.Releases[0].Version
			r.AppstreamID = d.Releases[0].AppstreamID
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
