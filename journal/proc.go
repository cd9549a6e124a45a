package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procInfo identifies a process across pid reuse.
type procInfo struct {
	PID     int
	Start   uint64 // start time after boot, clock ticks (/proc/PID/stat field 22); 0 if unknown
	Command string // base name of argv[0]
}

func selfInfo() procInfo {
	pid := os.Getpid()
	p := procInfo{PID: pid}
	p.Start, _ = procStart(pid)
	p.Command = procCommand(pid)
	return p
}

// processAlive reports whether p still runs: the pid exists, started at the
// recorded time (when known) and runs the recorded program (when known;
// otherwise a program whose name contains "fleetup").
func processAlive(p procInfo) bool {
	if p.PID <= 0 {
		return false
	}
	start, err := procStart(p.PID)
	if err != nil {
		return false
	}
	if p.Start != 0 && start != p.Start {
		return false
	}
	cmd := procCommand(p.PID)
	if p.Command != "" {
		return cmd == p.Command
	}
	return strings.Contains(cmd, "fleetup")
}

// procStart returns the start time of pid from /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatStart(data)
}

// parseStatStart extracts field 22 (starttime) of a /proc/PID/stat line.
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')'.
func parseStatStart(data []byte) (uint64, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no ')' after the command name")
	}
	fields := strings.Fields(string(data[i+1:]))
	const idx = 22 - 3 // fields after ')' start at field 3 (state)
	if len(fields) <= idx {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want more than %d", len(fields), idx)
	}
	v, err := strconv.ParseUint(fields[idx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat: start time %q: %w", fields[idx], err)
	}
	return v, nil
}

// procCommand returns the base name of pid's argv[0], or "".
func procCommand(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(data) == 0 {
		return ""
	}
	argv0, _, _ := bytes.Cut(data, []byte{0})
	return filepath.Base(string(argv0))
}
