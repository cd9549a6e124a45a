package web

import (
	"context"
	"slices"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/report"
	"github.com/fleetup/fleetup/store"
	"github.com/fleetup/fleetup/target"
)

// runView is the run page: the run, and each node's state folded from
// the events stored so far, overlaid with the results of the nodes that
// ended. The page's script goes on from After over SSE.
type runView struct {
	Run     store.Run
	Running bool
	After   int64
	Nodes   []*nodeView
	Reports []reportLinks
}

type nodeView struct {
	Name string // the target, as the run names it
	// NodeName is the registered node's name, when it has one.
	NodeName   string
	Server     string
	State      fleetup.NodeState
	Message    string
	Error      string
	FailedIn   fleetup.NodeState
	Ended      bool
	Canary     bool
	Result     *orchestrator.NodeResult
	Components []*componentView
	Failed     []orchestrator.FailedDependency
}

type componentView struct {
	ID     string
	Phase  fleetup.Phase
	Bytes  int64
	Total  int64
	Result *fleetup.ComponentResult
}

type reportLinks struct {
	Kind    string
	Formats []string
}

// maxFoldEvents bounds the events the page folds; past it the script's
// stream carries on.
const maxFoldEvents = 200000

func (s *Server) runView(ctx context.Context, id string) (*runView, error) {
	d, err := s.db.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &runView{Run: d.Run, Running: d.State == store.RunRunning}
	byName := map[string]*nodeView{}
	node := func(name string) *nodeView {
		n := byName[name]
		if n == nil {
			n = &nodeView{Name: name, State: fleetup.StatePending}
			byName[name] = n
			v.Nodes = append(v.Nodes, n)
		}
		return n
	}
	for _, t := range d.Targets {
		node(t)
	}
	for v.After < maxFoldEvents {
		evs, err := s.db.Events(ctx, d.ID, v.After, 5000)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			v.After = ev.Seq
			e := ev.Event
			if e.Node == "" {
				continue
			}
			n := node(e.Node)
			if e.State != "" {
				n.State, n.Message = e.State, e.Message // a message is about its state
			} else if e.Message != "" {
				n.Message = e.Message
			}
			if e.Component != "" {
				c := n.component(e.Component)
				if e.Phase != "" {
					c.Phase = e.Phase
				}
				if e.Total > 0 {
					c.Bytes, c.Total = e.Bytes, e.Total
				}
				if downloaded(c.Phase) {
					c.Bytes = c.Total // the payload is all there
				}
			}
		}
		if len(evs) < 5000 {
			break
		}
	}
	for i := range d.Nodes {
		r := &d.Nodes[i]
		n := node(r.Node)
		n.Result, n.Ended = r, true
		n.State, n.Error, n.FailedIn, n.Server, n.Canary = r.State, r.Error, r.FailedIn, r.Server, r.Canary
		n.Failed = r.FailedDependencies
		for j := range r.Components {
			cr := &r.Components[j]
			c := n.component(cr.ComponentID)
			c.Result = cr
			if cr.Phase != "" {
				c.Phase = cr.Phase
			}
		}
	}
	if nodes, err := s.db.Nodes(ctx, ""); err == nil {
		// By kind and address: the run names a target completed with
		// its user and port, the store as it was entered.
		key := func(spec string) string {
			t, err := target.Parse(spec)
			if err != nil {
				return spec
			}
			if t.Port == 0 {
				t.Port = t.Kind.DefaultPort()
			}
			return string(t.Kind) + " " + t.Addr()
		}
		nameOf := map[string]string{}
		for _, n := range nodes {
			for _, t := range n.Targets {
				nameOf[key(t)] = n.Name
			}
		}
		for _, n := range v.Nodes {
			if name := nameOf[key(n.Name)]; name != "" && name != n.Name {
				n.NodeName = name
			}
		}
	}
	if !v.Running {
		for _, k := range report.Kinds() {
			if d.Kind == store.RunInventory && k != report.KindInventory && k != report.KindFirmware {
				continue
			}
			fs := []string{}
			for _, f := range report.Formats() {
				fs = append(fs, string(f))
			}
			v.Reports = append(v.Reports, reportLinks{Kind: string(k), Formats: fs})
		}
	}
	return v, nil
}

func (n *nodeView) component(id string) *componentView {
	i := slices.IndexFunc(n.Components, func(c *componentView) bool { return c.ID == id })
	if i >= 0 {
		return n.Components[i]
	}
	c := &componentView{ID: id}
	n.Components = append(n.Components, c)
	return c
}

// downloaded says a component in phase ph has its whole payload on the
// node: it is being or was installed.
func downloaded(ph fleetup.Phase) bool {
	return ph == fleetup.PhaseInstall || ph == fleetup.PhaseInstalled
}
