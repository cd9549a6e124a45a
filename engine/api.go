package engine

import "time"

// StateFile is the engine's record of itself in its directory, read by a
// later sweep when the engine was killed before it could clean up.
const StateFile = "engine.json"

// State is the engine's state file.
type State struct {
	RunID   string    `json:"run_id"`
	PID     int       `json:"pid"`
	Port    int       `json:"port"`
	Tag     string    `json:"firewall_tag"`
	Started time.Time `json:"started"`
}
