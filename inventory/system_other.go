//go:build !windows

package inventory

import (
	"context"
	"syscall"

	"github.com/fleetup/fleetup/proc"
)

// uname prints what `uname -n -r -m` prints for the runner's commands:
// asked of the kernel directly when they run in this process's namespaces
// (no runner prefix), else by running uname.
func uname(ctx context.Context, r *proc.Runner) ([]byte, error) {
	if len(r.Prefix) > 0 {
		return r.Output(ctx, "uname", "-n", "-r", "-m")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return nil, err
	}
	field := func(f [65]int8) string {
		b := make([]byte, 0, len(f))
		for _, c := range f {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		return string(b)
	}
	return []byte(field(u.Nodename) + " " + field(u.Release) + " " + field(u.Machine) + "\n"), nil
}
