package orchestrator

import (
	"context"
	"sync"
)

// Each calls do(i) for i in [0, n), at most parallel (≥ 1) at once, and
// returns when every call that started has returned. Once ctx ends no
// further call starts: a cancel never waits behind the queue. It reports
// which indices ran. Every fan-out over nodes (clean-up, firewall rules,
// preflight, runs) goes through it or through Run.
func Each(ctx context.Context, n, parallel int, do func(i int)) (ran []bool) {
	if parallel < 1 {
		parallel = 1
	}
	ran = make([]bool, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		ran[i] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			do(i)
		}()
	}
	wg.Wait()
	return ran
}
