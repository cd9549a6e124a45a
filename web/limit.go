package web

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// Login rate limiting: per remote IP and per account name, after
// freeFailures failures within failWindow every further attempt waits,
// the wait doubling from baseWait up to maxWait. A successful login
// clears the name's failures (not the address's).
const (
	freeFailures = 5
	failWindow   = 15 * time.Minute
	baseWait     = 30 * time.Second
	maxWait      = 15 * time.Minute
	// maxLimiterKeys bounds the memory of the limiter; past it, the
	// oldest quiet keys go first.
	maxLimiterKeys = 100000
)

// limiter counts failed logins in memory.
type limiter struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*failures
}

type failures struct {
	times []time.Time // within failWindow, oldest first
	until time.Time   // no attempt before
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, m: map[string]*failures{}}
}

func keys(ip, name string) []string {
	k := []string{"ip:" + ip}
	if name != "" {
		k = append(k, "name:"+name)
	}
	return k
}

// wait is how long the caller must wait before an attempt; 0: go ahead.
func (l *limiter) wait(ip, name string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var d time.Duration
	for _, k := range keys(ip, name) {
		if f := l.m[k]; f != nil && f.until.After(now) {
			d = max(d, f.until.Sub(now))
		}
	}
	return d
}

// fail records a failed attempt.
func (l *limiter) fail(ip, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.m) > maxLimiterKeys {
		l.prune(now)
	}
	for _, k := range keys(ip, name) {
		f := l.m[k]
		if f == nil {
			f = &failures{}
			l.m[k] = f
		}
		i := 0
		for i < len(f.times) && now.Sub(f.times[i]) > failWindow {
			i++
		}
		f.times = append(f.times[i:], now)
		if n := len(f.times); n >= freeFailures {
			f.until = now.Add(backoff(n - freeFailures))
		}
	}
}

// success clears the failures of name.
func (l *limiter) success(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, "name:"+name)
}

func (l *limiter) prune(now time.Time) {
	for k, f := range l.m {
		if len(f.times) == 0 || (now.Sub(f.times[len(f.times)-1]) > failWindow && !f.until.After(now)) {
			delete(l.m, k)
		}
	}
}

// backoff is the wait after the n-th failure beyond the free ones.
func backoff(n int) time.Duration {
	if n > 10 {
		return maxWait
	}
	return min(maxWait, time.Duration(float64(baseWait)*math.Pow(2, float64(n))))
}

// retryAfter is d in whole seconds, at least 1, for a Retry-After header.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
