// Command winsvc is a Windows service for the lab's tests: run by the
// service manager as "winsvc.exe NAME FILE", it writes "running" to FILE
// when started and keeps it fresh, and "stopped" to it when asked to stop,
// then exits. It always runs under svc.Run, since svc.IsWindowsService is
// false under Wine.
package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/windows/svc"
)

type service struct{ file string }

func (s service) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	write := func(state string) {
		os.WriteFile(s.file, []byte(fmt.Sprintf("%s %d\n", state, os.Getpid())), 0o644)
	}
	write("running")
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			write("running")
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				write("stopped")
				return false, 0
			}
		}
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: winsvc NAME FILE")
		os.Exit(2)
	}
	if err := svc.Run(os.Args[1], service{file: os.Args[2]}); err != nil {
		fmt.Fprintln(os.Stderr, "winsvc:", err)
		os.Exit(1)
	}
}
