package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/fleetup/fleetup"
)

// progressRefresh is how often the live display is redrawn.
const progressRefresh = 150 * time.Millisecond

// stdoutTerminal reports whether w can show live progress: an *os.File on
// a terminal whose TERM is not "dumb". It is the terminal test of
// withProgress for the real standard output; tests pass their own.
func stdoutTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// withProgress turns the live display on when terminal(w) says the
// reporter's writer is a terminal, and never with JSON. opts are added to
// the mpb container's (tests fix its width).
func withProgress(terminal func(io.Writer) bool, opts ...mpb.ContainerOption) reporterOption {
	return func(r *reporter) {
		if r.json || r.live != nil || !terminal(r.w) {
			return
		}
		r.live = newProgress(r.w, opts...)
		r.w = r.live
	}
}

// progress is the live display of a run on a terminal: one line per node,
// made at the node's first event, with the node's state, its current
// component and phase, and a bar while a download of known size runs. A
// node's end state (complete, failed, ...) freezes its line. Notices (the
// events with a Message) are printed above the lines, in the words of the
// plain output.
//
// progress is also the io.Writer through which the reporter prints
// everything else (the run's first line, the summary): such a write ends
// the live display first when it is drawn, so that what is printed lands
// below the frozen lines and never tears them.
//
// Its methods may be called from any goroutine. The mpb container is made
// at the first node's event and is shut down for good by end (or the first
// Write after it was made); from then on event reports false and the
// reporter prints plain lines again.
type progress struct {
	out  io.Writer             // the terminal
	opts []mpb.ContainerOption // after progress's own: tests fix the width
	rate time.Duration         // redraw interval

	// mu serialises everything written to out and guards the fields
	// below. It is never taken by mpb's goroutines (the decorators take
	// only their line's lock), so holding it while calling mpb is safe.
	mu      sync.Mutex
	p       *mpb.Progress // nil until the first node's event
	refresh chan any      // redraw requests: the ticker's and end's
	shut    chan any      // closed by mpb once the container is shut down
	stop    chan struct{} // closed by end: the ticker returns
	ticked  chan struct{} // closed when the ticker has returned
	nodes   map[string]*nodeLine
	ended   bool
}

var _ io.Writer = (*progress)(nil)

func newProgress(out io.Writer, opts ...mpb.ContainerOption) *progress {
	return &progress{out: out, opts: opts, rate: progressRefresh, nodes: map[string]*nodeLine{}}
}

// event draws ev: it updates (or makes) its node's line and prints its
// message above the lines. It reports false, doing nothing, once the
// display has ended: the caller prints ev as a plain line then.
func (pr *progress) event(ev fleetup.Event) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.ended {
		return false
	}
	if ev.Node != "" {
		l := pr.line(ev.Node)
		if state, ended := l.update(ev); ended && l.bar != nil {
			switch state {
			case fleetup.StateFailed, fleetup.StateCancelled:
				l.bar.Abort(false)
			default:
				l.bar.SetTotal(-1, true) // complete: total is what is done
			}
		}
	}
	if ev.Message != "" {
		if s, ok := plainLine(ev); ok {
			pr.above(s)
		}
	}
	return true
}

// Write ends the live display if it is drawn, then writes b to the
// terminal below it.
func (pr *progress) Write(b []byte) (int, error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.p != nil {
		pr.endLocked()
	}
	return pr.out.Write(b)
}

// end freezes every line where it is (a node that never reached an end
// state keeps its last state), draws the display one last time with every
// notice printed so far, and shuts the container down. Afterwards nothing
// of progress runs. It may be called more than once, and on a display
// that never started.
func (pr *progress) end() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.endLocked()
}

func (pr *progress) endLocked() {
	if pr.ended {
		return
	}
	pr.ended = true
	if pr.p == nil {
		return
	}
	for _, l := range pr.nodes {
		if l.bar != nil {
			l.bar.Abort(false) // a no-op on a line already ended
		}
	}
	// A notice written since the last redraw is only in mpb's buffer: a
	// redraw before the shutdown prints it (a shutdown drops it).
	select {
	case pr.refresh <- time.Now():
	case <-pr.shut: // mpb stopped on a write error
	}
	pr.p.Wait()
	close(pr.stop)
	<-pr.ticked
}

// above prints s above the lines, or straight to the terminal before
// there are any. It must be called with pr.mu held.
func (pr *progress) above(s string) {
	if pr.p != nil {
		if _, err := pr.p.Write([]byte(s)); err == nil {
			return
		}
	}
	io.WriteString(pr.out, s)
}

// line returns node's line, making it (and the container) at its first
// event. It must be called with pr.mu held.
func (pr *progress) line(node string) *nodeLine {
	if l, ok := pr.nodes[node]; ok {
		return l
	}
	if pr.p == nil {
		pr.start()
	}
	l := &nodeLine{filler: mpb.BarStyle().Build(), spinner: mpb.SpinnerStyle().PositionLeft().Build()}
	// Total 0: mpb never completes the bar by itself; event and end do.
	bar, err := pr.p.Add(0, mpb.BarFillerFunc(l.fill),
		mpb.BarWidth(32),
		mpb.PrependDecorators(
			decor.Name(node, decor.WCSyncSpaceR),
			decor.Any(l.stateText, decor.WCSyncSpaceR),
			decor.Any(l.activityText, decor.WCSyncSpaceR),
		),
		mpb.AppendDecorators(decor.Any(l.bytesText)),
	)
	if err == nil { // an error: mpb stopped on a write error; the line is not drawn
		l.bar = bar
	}
	pr.nodes[node] = l
	return l
}

// start makes the container and its ticker. mpb redraws on request only
// (WithManualRefresh), so that end can ask for a last redraw; the ticker
// asks every pr.rate. Lines that ended move above the running ones and are
// not redrawn (PopCompletedMode): a long run scrolls its finished nodes
// away.
func (pr *progress) start() {
	pr.refresh = make(chan any)
	pr.shut = make(chan any)
	pr.stop = make(chan struct{})
	pr.ticked = make(chan struct{})
	opts := append([]mpb.ContainerOption{
		mpb.WithOutput(pr.out),
		mpb.WithManualRefresh(pr.refresh),
		mpb.WithShutdownNotifier(pr.shut),
		mpb.PopCompletedMode(),
	}, pr.opts...)
	pr.p = mpb.New(opts...)
	go pr.tick()
}

func (pr *progress) tick() {
	defer close(pr.ticked)
	t := time.NewTicker(pr.rate)
	defer t.Stop()
	for {
		select {
		case <-pr.stop:
			return
		case <-pr.shut:
			return
		case now := <-t.C:
			select {
			case pr.refresh <- now:
			case <-pr.stop:
				return
			case <-pr.shut:
				return
			}
		}
	}
}

// nodeLine is what one node's line shows. Its decorators and filler run on
// mpb's goroutines and take mu only: nothing calls into mpb with mu held.
type nodeLine struct {
	bar     *mpb.Bar // nil when mpb would not take the line
	filler  mpb.BarFiller
	spinner mpb.BarFiller

	mu        sync.Mutex
	state     fleetup.NodeState
	component string
	phase     fleetup.Phase
	bytes     int64
	total     int64
	ended     bool
}

// update applies ev to the line and reports the node's state and whether
// ev ended it. A line that has ended is frozen: later events leave it be.
// A new state clears the component, a new component its phase, a new
// phase its byte counts.
func (l *nodeLine) update(ev fleetup.Event) (fleetup.NodeState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return l.state, false
	}
	if ev.State != "" && ev.State != l.state {
		l.state, l.component, l.phase, l.bytes, l.total = ev.State, "", "", 0, 0
	}
	if ev.Component != "" && ev.Component != l.component {
		l.component, l.phase, l.bytes, l.total = ev.Component, "", 0, 0
	}
	if ev.Phase != "" && ev.Phase != l.phase {
		l.phase, l.bytes, l.total = ev.Phase, 0, 0
	}
	if l.phase == fleetup.PhaseDownload {
		if ev.Bytes > 0 {
			l.bytes = ev.Bytes
		}
		if ev.Total > 0 {
			l.total = ev.Total
		}
	}
	l.ended = l.state.Final()
	return l.state, l.ended
}

func (l *nodeLine) stateText(decor.Statistics) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.state)
}

func (l *nodeLine) activityText(decor.Statistics) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended || l.component == "" {
		return ""
	}
	if l.phase == "" {
		return l.component
	}
	return l.component + " " + string(l.phase)
}

func (l *nodeLine) bytesText(decor.Statistics) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.ended || l.phase != fleetup.PhaseDownload || l.bytes == 0 && l.total == 0:
		return ""
	case l.total == 0:
		return fmt.Sprintf("% .1f", decor.SizeB1024(l.bytes))
	}
	return fmt.Sprintf("% .1f / % .1f", decor.SizeB1024(l.bytes), decor.SizeB1024(l.total))
}

// fill draws the middle of the line: a bar while a download of known size
// runs (never past its end, whatever the engine reports), a spinner while
// the node is worked on otherwise, nothing once it ended.
func (l *nodeLine) fill(w io.Writer, st decor.Statistics) error {
	l.mu.Lock()
	ended, down, bytes, total := l.ended, l.phase == fleetup.PhaseDownload, l.bytes, l.total
	l.mu.Unlock()
	switch {
	case ended:
		return nil
	case down && total > 0:
		st.Total, st.Current = total, min(bytes, total)
		return l.filler.Fill(w, st)
	}
	return l.spinner.Fill(w, st)
}
