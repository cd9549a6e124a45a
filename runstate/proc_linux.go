package runstate

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// inspect reads pid's start time (field 22 of /proc/PID/stat, clock ticks
// after boot) and whether it is a zombie. A pid that /proc does not show
// is an error, not errNoProcess: /proc may hide other users' processes
// (hidepid), and Check then asks kill(2).
func inspect(pid int) (procInfo, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	state, start, err := parseStat(data)
	if err != nil {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procInfo{start: start, exited: state == 'Z' || state == 'X'}, nil
}

// parseStat extracts field 3 (state) and field 22 (starttime) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(data []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no ')' after the command name")
	}
	fields := strings.Fields(string(data[i+1:]))
	const idx = 22 - 3 // fields after ')' start at field 3 (state)
	if len(fields) <= idx {
		return 0, 0, fmt.Errorf("%d fields after the command name, want more than %d", len(fields), idx)
	}
	if len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("state %q is not one letter", fields[0])
	}
	v, err := strconv.ParseUint(fields[idx], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("start time %q: %w", fields[idx], err)
	}
	return fields[0][0], v, nil
}
