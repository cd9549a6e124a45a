package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fleetup/fleetup/baseline"
)

type baselineOptions struct {
	JSON bool
}

func runBaseline(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return usagef("usage: fleetup baseline check [--json] DIR")
	}
	var opts baselineOptions
	fs := newFlags("baseline check", env)
	fs.BoolVar(&opts.JSON, "json", false, "print the baseline as JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: fleetup baseline check [--json] DIR")
	}
	return checkBaseline(env, fs.Arg(0), opts)
}

func checkBaseline(env *Env, dir string, opts baselineOptions) error {
	b, err := loadBaseline(dir)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(b); err != nil {
			return err
		}
	} else {
		baseline.WriteTable(env.Stdout, b)
	}
	if len(b.Problems) > 0 {
		return usagef("baseline %s: %d problem(s); those components are never deployed", dir, len(b.Problems))
	}
	return nil
}

func loadBaseline(dir string) (*baseline.Baseline, error) {
	b, err := baseline.Load(dir)
	if err != nil {
		return nil, usagef("baseline %s: %w", dir, err)
	}
	if len(b.Components) == 0 && len(b.Problems) == 0 {
		return nil, usagef("baseline %s: no components", dir)
	}
	return b, nil
}

func baselineProblems(b *baseline.Baseline) error {
	if len(b.Problems) == 0 {
		return nil
	}
	msg := fmt.Sprintf("baseline %s has %d problem(s); nothing was deployed:", b.Dir, len(b.Problems))
	for _, p := range b.Problems {
		msg += "\n  " + p.Error()
	}
	return usagef("%s", msg)
}
