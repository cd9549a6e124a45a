package depot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/fleetup/fleetup"
)

// ParseEvents parses a status post: one JSON object (a fleetup.Event) or a
// JSON array of them, and nothing after it. Unknown fields are ignored, so
// that an engine of a newer version can still report.
func ParseEvents(data []byte) ([]fleetup.Event, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("status: empty body")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var evs []fleetup.Event
	switch trimmed[0] {
	case '{':
		var ev fleetup.Event
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("status: event: %w", err)
		}
		evs = []fleetup.Event{ev}
	case '[':
		if err := dec.Decode(&evs); err != nil {
			return nil, fmt.Errorf("status: event list: %w", err)
		}
	default:
		return nil, fmt.Errorf("status: body starts with %q, want a JSON object or array", trimmed[0])
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("status: data after the JSON value")
	}
	for i, ev := range evs {
		if ev.State == "" && ev.Phase == "" && ev.Message == "" {
			return nil, fmt.Errorf("status: event %d has no state, phase or message", i+1)
		}
	}
	return evs, nil
}
