package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxRelogins bounds the logins in a row that the BMC answers by refusing
// the new session again.
const maxRelogins = 3

// Progress is what the BMC says of a running update.
type Progress struct {
	// State is the BMC's word: TaskState, JobState or Oem.Hpe.State.
	State string
	// Percent is the BMC's percentage, -1 when it gives none.
	Percent int
	// Messages are the BMC's messages not reported before
	// ("Message (MessageId)").
	Messages []string
	// Resetting is set while the BMC does not answer (it is resetting):
	// State and Percent are then the last ones known.
	Resetting bool
}

// Wait follows job until it ends, calling progress (when not nil) each
// time the state, the percentage or the messages change.
//
// It survives the BMC resetting in the middle: connection refused or
// broken, timeouts, 5xx answers, a 401 for a session the reset killed, the
// task URI answering 404 (iDRAC moves a job to
// /redfish/v1/Managers/<id>/Jobs/<ID> or /redfish/v1/JobService/Jobs/<ID>).
// While the BMC is down it polls the service root, pausing from Poll up to
// MaxBackoff, for at most resetTimeout per outage (DefaultResetTimeout when
// zero); when the service answers again it goes on, logging in again when
// the session is gone. progress is called from Wait's own goroutine.
//
// HPE jobs follow Oem.Hpe.State of the UpdateService: Complete ends well,
// Error ends with Oem.Hpe.Result; an iLO back to Idle (or Unknown) after
// working on the update, or after a reset, ends with ErrOutcomeUnknown.
//
// Wait returns nil when the BMC says the update completed; an
// *UpdateError, with the BMC's messages, when it says it failed; an error
// wrapping ErrOutcomeUnknown when the BMC stopped saying (the caller reads
// the version back); a *ResetTimeoutError when the BMC did not come back
// within resetTimeout; ctx's error when ctx ended first; any other error
// (a TLS refusal after the reset, a login refused) as it came.
func (c *Client) Wait(ctx context.Context, job *Job, resetTimeout time.Duration, progress func(Progress)) error {
	if job == nil {
		return errors.New("redfish: Wait: no job")
	}
	if resetTimeout <= 0 {
		resetTimeout = DefaultResetTimeout
	}
	if !job.HPE && job.TaskURI == "" {
		return fmt.Errorf("redfish at %s: the BMC accepted the update without a task to follow: %w", c.endpoint, ErrOutcomeUnknown)
	}
	w := &waiter{c: c, job: job, report: progress, reset: resetTimeout, start: time.Now(), percent: -1, seen: map[string]bool{}}
	if w.report == nil {
		w.report = func(Progress) {}
	}
	return w.run(ctx)
}

// waiter is the state of one Wait.
type waiter struct {
	c      *Client
	job    *Job
	report func(Progress)
	reset  time.Duration
	start  time.Time

	state    string
	percent  int
	seen     map[string]bool // the messages reported, by key
	resetted bool            // an outage happened during this Wait
	back     bool            // the BMC answers again after an outage: report the next look
	active   bool            // HPE: a working state was seen
	lostAt   time.Time       // when the job was first not found
	junkAt   time.Time       // when the task first answered something that is not a JSON object
	relogins int
}

// observation is one look at the update.
type observation struct {
	state   string
	percent int
	msgs    []message
	end     outcome
	next    time.Duration // Retry-After, when the BMC gave one
}

func (w *waiter) run(ctx context.Context) error {
	var gone *sessionGone
	for {
		obs, err := w.look(ctx)
		switch {
		case err == nil:
			w.relogins = 0
			if done, err := w.take(obs); done {
				return err
			}
			if err := sleep(ctx, max(w.c.cfg.Poll, obs.next)); err != nil {
				return err
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case down(err):
			if err := w.outage(ctx, err); err != nil {
				return err
			}
		case errors.As(err, &gone):
			if w.relogins++; w.relogins > maxRelogins {
				return &AuthError{Endpoint: w.c.endpoint, User: w.c.cfg.User, Status: http.StatusUnauthorized,
					Messages: []string{"the BMC refused every new session while following the update"}}
			}
			if err := w.c.renewSession(ctx, gone.StatusError); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !down(err) {
					return err
				}
				if err := w.outage(ctx, err); err != nil {
					return err
				}
			}
		default:
			return err
		}
	}
}

// sessionGone is a 401 on a call made with the session.
type sessionGone struct{ *StatusError }

func (e *sessionGone) Unwrap() error { return e.StatusError }

// outage waits for the service root to answer again, and tells progress.
func (w *waiter) outage(ctx context.Context, cause error) error {
	w.resetted = true
	w.c.log.Info("redfish: BMC not answering, waiting for it", "err", cause)
	w.report(Progress{State: w.state, Percent: w.percent, Resetting: true})
	if err := w.c.awaitRoot(ctx, time.Now(), w.reset, cause); err != nil {
		return err
	}
	w.c.log.Info("redfish: BMC answering again")
	w.back = true
	return nil
}

// look reads the state of the update once.
func (w *waiter) look(ctx context.Context) (observation, error) {
	if w.job.HPE {
		return w.lookHPE(ctx)
	}
	r, err := w.c.get(ctx, w.job.TaskURI)
	if err != nil {
		return observation{}, err
	}
	if r.status == http.StatusNotFound {
		if r, err = w.relocate(ctx); err != nil {
			return observation{}, err
		}
		if r == nil {
			return w.lost(), nil
		}
	}
	w.lostAt = time.Time{}
	switch {
	case r.status == http.StatusUnauthorized:
		return observation{}, &sessionGone{w.c.statusError(r)}
	case r.status >= 500:
		return observation{}, &UnreachableError{Endpoint: w.c.endpoint, Err: w.c.statusError(r)}
	case r.status == http.StatusNoContent:
		// A task monitor's final answer to an operation without content.
		return observation{state: w.state, percent: w.percent, end: succeeded}, nil
	case !r.ok():
		return observation{}, w.c.statusError(r)
	}
	obs := observation{percent: -1, next: retryAfter(r.header)}
	t, err := parseTask(r.body)
	if err != nil {
		if r.status == http.StatusAccepted && len(r.body) == 0 {
			// A task monitor still at work, saying no more.
			return observation{state: w.state, percent: w.percent, end: running, next: obs.next}, nil
		}
		// A BMC busy flashing may answer nonsense now and then: no
		// news, for Grace.
		if w.junkAt.IsZero() {
			w.junkAt = time.Now()
		}
		if time.Since(w.junkAt) >= w.c.cfg.Grace {
			return observation{}, fmt.Errorf("redfish at %s: GET %s: %d with a body that is not a JSON object, for %s", w.c.endpoint, w.job.TaskURI, r.status, w.c.cfg.Grace)
		}
		return observation{state: w.state, percent: w.percent, end: running}, nil
	}
	w.junkAt = time.Time{}
	obs.state, obs.percent, obs.msgs, obs.end = t.state, t.percent, t.msgs, t.outcome()
	if r.status == http.StatusAccepted && obs.end == stateless {
		obs.end = running // a task monitor still at work
	}
	return obs, nil
}

// relocate looks for the job elsewhere after its URI answered 404: iDRAC
// moves a job from the TaskService to the Manager's or the JobService's
// Jobs when it resets. It returns the first candidate's answer that is not
// 404 (and makes it the job's URI when it is a success), or nil when none
// knows the job.
func (w *waiter) relocate(ctx context.Context) (*reply, error) {
	id := w.job.ID
	if id == "" {
		return nil, nil
	}
	var cands []string
	if mgr, err := w.c.managerID(ctx); err == nil && mgr != "" {
		cands = append(cands, "/redfish/v1/Managers/"+url.PathEscape(mgr)+"/Jobs/"+url.PathEscape(id))
	} else if err != nil && (ctx.Err() != nil || down(err) || errors.As(err, new(*sessionGone))) {
		return nil, err
	}
	cands = append(cands, "/redfish/v1/JobService/Jobs/"+url.PathEscape(id), "/redfish/v1/TaskService/Tasks/"+url.PathEscape(id))
	for _, uri := range cands {
		if uri == w.job.TaskURI {
			continue
		}
		r, err := w.c.get(ctx, uri)
		if err != nil {
			return nil, err
		}
		if r.status == http.StatusNotFound {
			continue
		}
		if r.ok() {
			w.c.log.Info("redfish: the job moved", "from", w.job.TaskURI, "to", uri)
			w.job.TaskURI = uri
		}
		return r, nil
	}
	return nil, nil
}

// lost is the observation of a job no URI knows: still running for ten
// polls (at most Grace), as a BMC just back may not have loaded its jobs
// yet, then ended. bmcweb keeps its tasks in memory: after a reset they are
// gone for good, and the version read back has to tell.
func (w *waiter) lost() observation {
	if w.lostAt.IsZero() {
		w.lostAt = time.Now()
	}
	obs := observation{state: w.state, percent: w.percent, end: running}
	if time.Since(w.lostAt) >= min(w.c.cfg.Grace, 10*w.c.cfg.Poll) {
		obs.end = stateless
	}
	return obs
}

// managerID is the Id of the first Manager (cached).
func (c *Client) managerID(ctx context.Context) (string, error) {
	c.mu.Lock()
	id, mgrs := c.manager, c.root.managers
	c.mu.Unlock()
	if id != "" || mgrs == "" {
		return id, nil
	}
	r, err := c.get(ctx, mgrs)
	if err != nil {
		return "", err
	}
	if r.status == http.StatusUnauthorized {
		return "", &sessionGone{c.statusError(r)}
	}
	if !r.ok() {
		return "", c.statusError(r)
	}
	col, err := parseCollection(r.body, c.resolver(mgrs))
	if err != nil || len(col.members) == 0 {
		return "", err
	}
	id = jobID(col.members[0])
	c.mu.Lock()
	c.manager = id
	c.mu.Unlock()
	return id, nil
}

// lookHPE reads Oem.Hpe of the UpdateService once.
func (w *waiter) lookHPE(ctx context.Context) (observation, error) {
	w.c.mu.Lock()
	uri := w.c.root.updateService
	w.c.mu.Unlock()
	if uri == "" {
		return observation{}, fmt.Errorf("redfish at %s: no UpdateService to follow the update in", w.c.endpoint)
	}
	r, err := w.c.get(ctx, uri)
	if err != nil {
		return observation{}, err
	}
	switch {
	case r.status == http.StatusUnauthorized:
		return observation{}, &sessionGone{w.c.statusError(r)}
	case r.status >= 500:
		return observation{}, &UnreachableError{Endpoint: w.c.endpoint, Err: w.c.statusError(r)}
	case !r.ok():
		return observation{}, w.c.statusError(r)
	}
	h, err := parseHPE(r.body)
	if err != nil || !h.present {
		return observation{}, fmt.Errorf("redfish at %s: GET %s: no Oem.Hpe state to follow", w.c.endpoint, uri)
	}
	return w.hpeObservation(h), nil
}

// hpeObservation classifies an HPE state. Complete and Error count only
// when they are news: a working state was seen, or the state differs from
// the one before the update was posted; else they are the previous
// update's, and bear Grace. Idle and Unknown end the update after a working
// state or a reset (without Complete, the outcome is unknown), and after
// Grace otherwise.
func (w *waiter) hpeObservation(h hpeState) observation {
	obs := observation{state: h.state, percent: h.percent, end: running}
	stale := !w.active && strings.EqualFold(h.state, w.job.hpeBefore.state) && h.result == w.job.hpeBefore.result
	late := time.Since(w.start) >= w.c.cfg.Grace
	// Oem.Hpe.Result is the last update's result: news only in the end
	// state of this one.
	final := func(end outcome) {
		switch {
		case !stale:
			obs.end = end
			if h.result.String() != "" {
				obs.msgs = []message{h.result}
			}
		case late:
			obs.end = stateless
		}
	}
	switch strings.ToLower(h.state) {
	case "complete":
		final(succeeded)
	case "error":
		final(failed)
	case "idle", "unknown", "":
		if w.active || w.resetted || late {
			obs.end = stateless
		}
	default:
		w.active = true
	}
	return obs
}

// take records an observation, reports what changed, and says whether the
// update ended, and how.
func (w *waiter) take(obs observation) (bool, error) {
	changed := obs.state != w.state || obs.percent != w.percent || w.back
	w.back = false
	w.state, w.percent = obs.state, obs.percent
	var fresh []string
	for _, m := range obs.msgs {
		k := m.key()
		if w.seen[k] || len(w.seen) >= 4*maxMessages {
			continue
		}
		w.seen[k] = true
		fresh = append(fresh, m.String())
	}
	if changed || len(fresh) > 0 {
		w.report(Progress{State: obs.state, Percent: obs.percent, Messages: fresh})
	}
	switch obs.end {
	case succeeded:
		return true, nil
	case failed:
		// The failed task's own messages: a task keeps its history, and
		// the progress reports had the rest.
		return true, &UpdateError{Endpoint: w.c.endpoint, JobID: w.job.ID, State: obs.state, Messages: distinct(obs.msgs)}
	case stateless:
		if w.job.HPE {
			return true, fmt.Errorf("redfish at %s: Oem.Hpe.State is %q without a Complete: %w", w.c.endpoint, obs.state, ErrOutcomeUnknown)
		}
		if !w.lostAt.IsZero() {
			return true, fmt.Errorf("redfish at %s: job %s is not found any more: %w", w.c.endpoint, w.job.ID, ErrOutcomeUnknown)
		}
		// A task monitor's final answer (the operation's own response),
		// or a task without a readable TaskState: neither says how the
		// update went.
		return true, fmt.Errorf("redfish at %s: %s answered without a task state: %w", w.c.endpoint, w.job.TaskURI, ErrOutcomeUnknown)
	}
	return false, nil
}
