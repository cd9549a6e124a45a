package proc

import (
	"os"
	"os/exec"
)

// ownGroup leaves cmd as it is: exec.CommandContext kills the process
// itself when its context ends. (Windows has no process groups to kill; a
// Windows engine will put its installs in a job object.)
func ownGroup(*exec.Cmd) {}

func terminate(pid int) error { return kill(pid) }

func kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
