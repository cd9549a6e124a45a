package engine

import "regexp"

// runIDPattern is the shape of a run id: UTC date and time and six hex
// digits, as the manager makes them ("20261121-140501-a1b2c3"), or the same
// after "cleanup-" for the runs of `fleetup cleanup`.
var runIDPattern = regexp.MustCompile(`^(cleanup-)?[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$`)

// ValidRunID reports whether id has the shape of a run id.
func ValidRunID(id string) bool { return runIDPattern.MatchString(id) }
