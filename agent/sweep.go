package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// Sweep places a fresh engine on the POSIX node behind conn and has it
// remove what earlier runs left there (see engine.Sweep): the runs named in
// runs even if their engine still runs, everything with all, else only
// what no live engine owns. It then removes itself and closes conn. opts
// needs RunID, Engine and, for a non-root user with a sudo password,
// Password.
func Sweep(ctx context.Context, name string, conn transport.Conn, opts RemoteOptions, runs []string, all bool) (*wire.CleanupReport, error) {
	defer conn.Close()
	if opts.Node == "" {
		opts.Node = name
	}
	return sweepOn(ctx, conn, opts.spec(), opts.Password, opts.StartTimeout, runs, all)
}

// sweepOn is Sweep on a connection it leaves open.
func sweepOn(ctx context.Context, conn transport.Conn, spec Spec, password func() ([]byte, error), timeout time.Duration, runs []string, all bool) (*wire.CleanupReport, error) {
	s := &posixSession{conn: conn, spec: spec, password: password, timeout: timeout, lines: make(chan []byte, 16)}
	if s.timeout == 0 {
		s.timeout = 60 * time.Second
	}
	var rep *wire.CleanupReport
	err := func() error {
		var out bytes.Buffer
		if err := conn.Run(ctx, s.scoutScript(), nil, &out, nil); err != nil {
			return fmt.Errorf("scout: %w", err)
		}
		sr, err := parseScout(strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), spec.RunID)
		if err != nil {
			return err
		}
		s.loginDir = sr.Dir
		goarch, err := goarchOf(sr.Arch)
		if err != nil {
			return err
		}
		bin, err := spec.Engine(goarch)
		if err != nil {
			return err
		}
		sum, err := placeEngine(ctx, conn, sr.Dir, bin)
		if err != nil {
			return err
		}
		args := []string{"sweep"}
		for _, run := range runs {
			args = append(args, "--run", transport.ShellQuote(run))
		}
		if all {
			args = append(args, "--all")
		}
		if err := s.launch(ctx, strings.Join(args, " "), sum); err != nil {
			return err
		}
		l, err := s.nextLine(ctx, 5*time.Minute, "with its sweep report")
		if err != nil {
			return err
		}
		rep = &wire.CleanupReport{}
		if err := json.Unmarshal(l, rep); err != nil {
			return fmt.Errorf("sweep report %q: %w", truncate(l, 200), err)
		}
		select { // the sweeper exits once it has reported
		case <-s.exited:
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
		return nil
	}()
	if s.proc != nil {
		_ = s.proc.Close()
	}
	// The sweeper's login directory (rootScript removes it, unless the
	// sweeper never ran); its root-owned copy removes itself.
	if s.loginDir != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		q := transport.ShellQuote(s.loginDir)
		if cerr := conn.Run(cctx, "rm -rf -- "+q, nil, nil, nil); cerr != nil && err == nil {
			err = fmt.Errorf("remove the sweeper's own directory %s: %w", s.loginDir, cerr)
		}
	}
	if rep != nil {
		rep.Node = spec.Node
	}
	return rep, err
}
