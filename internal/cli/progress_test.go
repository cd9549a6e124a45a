package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"
	"go.uber.org/goleak"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
)

// forceTerminal is withProgress on any writer, at a fixed width.
func forceTerminal() reporterOption {
	return withProgress(func(io.Writer) bool { return true }, mpb.WithWidth(120))
}

// liveReporter is a reporter whose live display draws on w every
// millisecond, so that drawing and events meet.
func liveReporter(w io.Writer) *reporter {
	r := newReporter(w, false, forceTerminal())
	r.live.rate = time.Millisecond
	return r
}

// TestProgressConcurrentEvents feeds a live display events of several
// nodes from many goroutines at once, each node to its own end state (one
// never ends), with notices of the nodes and of the manager in between,
// then prints the summary: the output holds every notice and every end
// state, the summary comes last and whole, and nothing is left running.
func TestProgressConcurrentEvents(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out bytes.Buffer
	r := liveReporter(&out)
	r.runStart("run-1", 6)
	r.notice("", "the manager listens on 127.0.0.1:63001")

	ends := map[string]fleetup.NodeState{
		"n1": fleetup.StateComplete,
		"n2": fleetup.StateFailed,
		"n3": fleetup.StateCancelled,
		"n4": fleetup.StateSkipped,
		"n5": fleetup.StateRebootNeeded,
		"n6": "", // never ends: end freezes it where it is
	}
	var wg sync.WaitGroup
	for node, end := range ends {
		wg.Go(func() {
			for _, s := range []fleetup.NodeState{fleetup.StateScouting, fleetup.StateInventory, fleetup.StateAnalysis} {
				r.event(fleetup.Event{Time: time.Now(), Node: node, State: s})
			}
			r.event(fleetup.Event{Time: time.Now(), Node: node, State: fleetup.StateAnalysis, Component: "bios", Message: "update"})
			r.event(fleetup.Event{Time: time.Now(), Node: node, State: fleetup.StateDeploy})
			r.event(fleetup.Event{Time: time.Now(), Node: node, Component: "bios", Phase: fleetup.PhaseDownload, Total: 1 << 20, Message: "fetching bios.cab"})
			// Several goroutines report bytes of the same download.
			var dl sync.WaitGroup
			for g := range 4 {
				dl.Go(func() {
					for i := range 50 {
						r.event(fleetup.Event{Time: time.Now(), Node: node, Component: "bios", Phase: fleetup.PhaseDownload, Bytes: int64(g*50+i) << 12, Total: 1 << 20})
					}
				})
			}
			dl.Wait()
			r.event(fleetup.Event{Time: time.Now(), Node: node, Component: "bios", Phase: fleetup.PhaseVerify, Message: "sha256 matches"})
			r.event(fleetup.Event{Time: time.Now(), Node: node, Component: "bios", Phase: fleetup.PhaseInstall, Message: "installing 2.0"})
			if end == "" {
				return
			}
			r.event(fleetup.Event{Time: time.Now(), Node: node, State: fleetup.StateCleanup})
			r.event(fleetup.Event{Time: time.Now(), Node: node, State: end, Message: "ended " + string(end)})
		})
	}
	wg.Go(func() {
		for i := range 20 {
			r.notice("", fmt.Sprintf("manager notice %d", i))
		}
	})
	wg.Wait()

	results := []orchestrator.NodeResult{
		{Node: "n1", State: fleetup.StateComplete},
		{Node: "n2", State: fleetup.StateFailed, Error: "install bios: exit 1"},
	}
	var want bytes.Buffer
	newReporter(&want, false).summary(results, false)
	r.summary(results, false)
	r.endProgress() // a second end, as deployRun's deferred one: a no-op
	got := out.String()

	if !strings.HasPrefix(got, "fleetup run run-1 on 6 node(s)\n") {
		t.Errorf("output does not start with the run line:\n%s", got)
	}
	if !strings.HasSuffix(got, want.String()) {
		t.Errorf("output does not end with the summary %q:\n%s", want.String(), got)
	}
	for node, end := range ends {
		if end == "" {
			end = fleetup.StateDeploy
		}
		if !regexp.MustCompile(`(?m)^` + node + ` +` + string(end) + ` `).MatchString(got) {
			t.Errorf("no line of %s in its end state %s:\n%s", node, end, got)
		}
		for phase, msg := range map[fleetup.Phase]string{fleetup.PhaseDownload: "fetching bios.cab", fleetup.PhaseVerify: "sha256 matches", fleetup.PhaseInstall: "installing 2.0"} {
			if line := fmt.Sprintf("  %-24s bios %s: %s\n", node, phase, msg); !strings.Contains(got, line) {
				t.Errorf("output lacks the notice %q", line)
			}
		}
	}
	for _, want := range []string{"manager                  : the manager listens on 127.0.0.1:63001\n", "manager notice 19\n", "n2                       failed: ended failed\n", "n1                       bios verify: sha256 matches\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\x1b[") {
		t.Errorf("escape codes in the output of a writer that is no terminal:\n%q", got)
	}

	// After the end, events are plain lines again.
	out.Reset()
	r.event(fleetup.Event{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Node: "n1", State: fleetup.StateCleanup, Message: "late"})
	if want := "03:04:05  n1                       cleanup: late\n"; out.String() != want {
		t.Errorf("event after the end printed %q, want %q", out.String(), want)
	}
}

// TestProgressEndWhileEventsArrive is a cancelled run: nodes still report
// (their cancel, their clean-up) while the summary is printed. The summary
// ends the display and comes out whole; the events after it are plain
// lines, before or after the table but never inside it.
func TestProgressEndWhileEventsArrive(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out bytes.Buffer
	r := liveReporter(&out)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for n := range 4 {
		node := fmt.Sprintf("n%d", n)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r.event(fleetup.Event{Time: time.Now(), Node: node, State: fleetup.StateDeploy, Component: "c", Phase: fleetup.PhaseDownload, Bytes: int64(i), Total: 1000})
				if i == 100 {
					r.event(fleetup.Event{Time: time.Now(), Node: node, State: fleetup.StateCancelled, Message: "cancelled"})
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	results := []orchestrator.NodeResult{{Node: "n0", State: fleetup.StateCancelled}, {Node: "n1", State: fleetup.StateCancelled}}
	var want bytes.Buffer
	newReporter(&want, false).summary(results, false)
	r.summary(results, false)
	close(stop)
	wg.Wait()
	r.endProgress()
	if !strings.Contains(out.String(), want.String()) {
		t.Errorf("output lacks the summary %q whole:\n%s", want.String(), out.String())
	}
	if !r.live.ended {
		t.Error("the summary did not end the display")
	}
}

// TestProgressOddEvents: events the display has no use for, or that make
// no sense, neither crash it nor block it, and a display that never drew a
// line ends at once.
func TestProgressOddEvents(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name   string
		events []fleetup.Event
		want   []string
	}{
		{"nothing", nil, nil},
		{"manager notices only", []fleetup.Event{{Message: "hello"}, {}}, []string{"manager                  : hello\n"}},
		{"no state, no message", []fleetup.Event{{Node: "n1"}, {Node: "n1", Component: "c"}}, []string{"n1 "}},
		{"download without total", []fleetup.Event{{Node: "n1", Component: "c", Phase: fleetup.PhaseDownload, Bytes: 5000}}, []string{"c download", "4.9 KiB"}},
		{"bytes past total", []fleetup.Event{{Node: "n1", Component: "c", Phase: fleetup.PhaseDownload, Bytes: 3 << 20, Total: 1 << 20}}, []string{"3.0 MiB / 1.0 MiB"}},
		{"negative counts", []fleetup.Event{{Node: "n1", Component: "c", Phase: fleetup.PhaseDownload, Bytes: -1, Total: -5}}, []string{"c download"}},
		{"events after the node's end", []fleetup.Event{
			{Node: "n1", State: fleetup.StateComplete},
			{Node: "n1", State: fleetup.StateDeploy, Component: "c", Phase: fleetup.PhaseDownload, Total: 10, Message: "after"},
		}, []string{"n1 complete", "c download: after\n"}},
		{"unknown state", []fleetup.Event{{Node: "n1", State: "odd"}}, []string{"n1 odd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			r := liveReporter(&out)
			for _, ev := range tt.events {
				r.event(ev)
			}
			r.endProgress()
			r.endProgress()
			got := regexp.MustCompile(` +`).ReplaceAllString(out.String(), " ")
			for _, w := range tt.want {
				w = regexp.MustCompile(` +`).ReplaceAllString(w, " ")
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestProgressOffPlainLines: without a terminal, the reporter prints the
// plain lines it always printed; with --json, JSON lines whatever the
// terminal says.
func TestProgressOffPlainLines(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	events := []fleetup.Event{
		{Time: at, Node: "n1", State: fleetup.StateScouting},
		{Time: at, Node: "n1", State: fleetup.StateDeploy, Component: "bios", Phase: fleetup.PhaseDownload, Total: 10, Message: "fetching bios.cab"},
		{Time: at, Node: "n1", Component: "bios", Phase: fleetup.PhaseDownload, Bytes: 5, Total: 10},
		{Time: at, Message: "manager notice"},
		{Time: at, Node: "n1", State: fleetup.StateComplete, Message: "done"},
	}
	const want = "03:04:05  n1                       bios download: fetching bios.cab\n" +
		"03:04:05  n1                       bios download: \n" +
		"03:04:05  manager                  : manager notice\n" +
		"03:04:05  n1                       complete: done\n"
	for _, tt := range []struct {
		name string
		opts []reporterOption
	}{
		{"no option", nil},
		{"not a terminal", []reporterOption{withProgress(func(io.Writer) bool { return false })}},
		{"the real test on a buffer", []reporterOption{withProgress(stdoutTerminal)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			r := newReporter(&out, false, tt.opts...)
			for _, ev := range events {
				r.event(ev)
			}
			r.endProgress()
			if out.String() != want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		var out bytes.Buffer
		r := newReporter(&out, true, forceTerminal())
		if r.live != nil {
			t.Fatal("a JSON reporter has a live display")
		}
		for _, ev := range events {
			r.event(ev)
		}
		r.endProgress()
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != len(events) {
			t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), out.String())
		}
		for _, l := range lines {
			var v struct{ Type string }
			if err := json.Unmarshal([]byte(l), &v); err != nil || v.Type != "event" {
				t.Errorf("line %q: type %q, %v", l, v.Type, err)
			}
		}
	})
}

// TestProgressStdoutTerminal: neither a buffer nor a pipe is a terminal.
func TestProgressStdoutTerminal(t *testing.T) {
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	defer wr.Close()
	for _, w := range []io.Writer{&bytes.Buffer{}, wr, io.Discard} {
		if stdoutTerminal(w) {
			t.Errorf("stdoutTerminal(%T) = true", w)
		}
	}
}
