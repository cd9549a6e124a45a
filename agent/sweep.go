package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/fleetup/fleetup/wire"
	"strings"
	"time"

	"github.com/fleetup/fleetup/transport"
)

// Sweep places a fresh engine on the node behind conn and has it remove
// what earlier runs left there (see engine.Sweep): the runs named in runs
// even if their engine still runs, everything with all, else only what no
// live engine owns. It then removes itself and closes conn. opts needs
// RunID, Engine and, for a non-root user with a sudo password, Password.
func Sweep(ctx context.Context, name string, conn transport.Conn, opts RemoteOptions, runs []string, all bool) (*wire.CleanupReport, error) {
	r := &Remote{name: name, conn: conn, opts: opts, lines: make(chan []byte, 16)}
	defer conn.Close()
	var rep *wire.CleanupReport
	err := func() error {
		if err := r.scout(ctx); err != nil {
			return err
		}
		args := []string{"sweep"}
		for _, run := range runs {
			args = append(args, "--run", transport.ShellQuote(run))
		}
		if all {
			args = append(args, "--all")
		}
		if err := r.launch(ctx, strings.Join(args, " ")); err != nil {
			return err
		}
		select {
		case l, ok := <-r.lines:
			if !ok {
				return r.startError(fmt.Errorf("the sweep ended without a report"))
			}
			rep = &wire.CleanupReport{}
			if err := json.Unmarshal(l, rep); err != nil {
				return fmt.Errorf("sweep report %q: %w", l, err)
			}
		case <-time.After(5 * time.Minute):
			return fmt.Errorf("the sweep did not finish within 5m")
		case <-ctx.Done():
			return ctx.Err()
		}
		_ = r.proc.Wait()
		return nil
	}()
	if r.proc != nil {
		_ = r.proc.Close()
	}
	if r.dir != "" {
		q := transport.ShellQuote(r.dir)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if cerr := conn.Run(cctx, "rm -rf "+q, nil, nil, nil); cerr != nil && err == nil {
			err = fmt.Errorf("remove the sweeper's own directory %s: %w", r.dir, cerr)
		}
		cancel()
	}
	if rep != nil {
		rep.Node = name
	}
	return rep, err
}
