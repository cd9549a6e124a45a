package baseline

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/version"
)

// requireOps are the operators of a requires entry, two-character ones
// first so that ">=" is never read as ">" then "=".
var requireOps = []string{">=", "<=", ">", "<", "="}

// ParseRequirement parses one entry of a manifest's requires: "ID OP
// VERSION" with OP one of >=, >, =, <=, < (spaces around it optional), or a
// bare "ID" for any version. The ID is checked as component ids are; the
// version only for what every format refuses (spaces, a second operator):
// Load checks it in the format of the component it names.
func ParseRequirement(s string) (fleetup.Requirement, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return fleetup.Requirement{}, errors.New("empty entry")
	}
	i := strings.IndexAny(t, "<>=!~^")
	if i < 0 {
		if strings.ContainsAny(t, " \t") {
			return fleetup.Requirement{}, errors.New("an id and a version need an operator between them (one of >=, >, =, <=, <)")
		}
		if err := checkID(t); err != nil {
			return fleetup.Requirement{}, err
		}
		return fleetup.Requirement{ID: t}, nil
	}
	id, rest := strings.TrimSpace(t[:i]), t[i:]
	if id == "" {
		return fleetup.Requirement{}, errors.New("missing id before the operator")
	}
	if err := checkID(id); err != nil {
		return fleetup.Requirement{}, err
	}
	// The operator: its first character (a '~' or '^' starts only other
	// tools' operators) and the operator characters after it.
	n := len(rest) - len(strings.TrimLeft(rest[1:], "<>=!"))
	op := rest[:n]
	known := false
	for _, o := range requireOps {
		known = known || op == o
	}
	if !known {
		return fleetup.Requirement{}, fmt.Errorf("operator %q is not one of >=, >, =, <=, <", op)
	}
	v := strings.TrimSpace(rest[n:])
	switch {
	case v == "":
		return fleetup.Requirement{}, fmt.Errorf("missing version after %q", op)
	case strings.ContainsAny(v, "<>=!"):
		return fleetup.Requirement{}, errors.New("one operator per entry: write a range as two entries")
	case strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fleetup.Requirement{}, fmt.Errorf("version %q contains spaces or control characters", v)
	}
	return fleetup.Requirement{ID: id, Op: op, Version: v}, nil
}

// checkRequires checks the requires of a baseline's components against
// each other and returns, by index into comps, why a component is refused:
// a requirement's version that is not valid in the version format of the
// component it names (in the requiring component's own format when the
// baseline does not have it), and every requires cycle the component is
// in, named from the component that comes first in comps ("requires
// cycle: a -> b -> a"), so that every member of one cycle names it alike.
// A requirement on an id the baseline does not have is not a problem: the
// node may have it already.
func checkRequires(comps []*fleetup.Component) map[int][]string {
	index := make(map[string]int, len(comps))
	for i, c := range comps {
		index[c.ID] = i
	}
	refused := map[int][]string{}
	next := make([][]int, len(comps)) // the graph: i requires next[i]
	for i, c := range comps {
		seen := map[int]bool{}
		for _, r := range c.Requires {
			j, ok := index[r.ID]
			format := c.VersionFormat
			if ok {
				format = comps[j].VersionFormat
				if !seen[j] {
					seen[j] = true
					next[i] = append(next[i], j)
				}
			}
			if r.Op == "" {
				continue
			}
			if err := version.Validate(format, r.Version); err != nil {
				refused[i] = append(refused[i], fmt.Sprintf("requires %q: %v", r.String(), err))
			}
		}
	}
	for i := range comps {
		cycle := shortestCycle(next, i)
		if cycle == nil {
			continue
		}
		// Start the cycle at its first component in comps.
		first := 0
		for k, j := range cycle {
			if j < cycle[first] {
				first = k
			}
		}
		ids := make([]string, 0, len(cycle)+1)
		for k := range cycle {
			ids = append(ids, comps[cycle[(first+k)%len(cycle)]].ID)
		}
		ids = append(ids, ids[0])
		refused[i] = append(refused[i], "requires cycle: "+strings.Join(ids, " -> "))
	}
	return refused
}

// shortestCycle returns the nodes of a shortest cycle of the graph next
// through start, beginning with start (a self-requirement is [start]), or
// nil when start is in no cycle.
func shortestCycle(next [][]int, start int) []int {
	parent := map[int]int{}
	queue := []int{start}
	for len(queue) > 0 {
		at := queue[0]
		queue = queue[1:]
		for _, j := range next[at] {
			if j == start {
				var path []int
				for k := at; k != start; k = parent[k] {
					path = append(path, k)
				}
				path = append(path, start)
				for l, r := 0, len(path)-1; l < r; l, r = l+1, r-1 {
					path[l], path[r] = path[r], path[l]
				}
				return path
			}
			if _, ok := parent[j]; !ok {
				parent[j] = at
				queue = append(queue, j)
			}
		}
	}
	return nil
}
