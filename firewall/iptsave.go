package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// saveTable is one table of iptables-save output.
type saveTable struct {
	Name string
	// Policies maps each chain to its policy: ACCEPT or DROP for built-in
	// chains, "-" for user-defined ones.
	Policies map[string]string
	Rules    []saveRule
}

// saveRule is one "-A CHAIN ..." line.
type saveRule struct {
	Chain string
	// Spec is the rule's arguments after "-A CHAIN", unquoted, ready to be
	// passed to "iptables -D CHAIN".
	Spec []string
	// Comments holds the value of every --comment in the rule.
	Comments []string
	// Line is the line as iptables-save printed it.
	Line string
}

// hasTag reports whether one of the rule's comments starts with prefix.
func (r saveRule) hasTag(prefix string) bool {
	for _, c := range r.Comments {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

// parseSave parses iptables-save (or ip6tables-save) output and returns
// the table named table, or an empty table of that name when the output
// has none. Errors name the offending line.
func parseSave(data []byte, table string) (*saveTable, error) {
	var (
		cur    *saveTable
		wanted = &saveTable{Name: table, Policies: map[string]string{}}
		lineNo int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		bad := func(format string, args ...any) error {
			return fmt.Errorf("iptables-save line %d %q: %s", lineNo, trimmed, fmt.Sprintf(format, args...))
		}
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case strings.HasPrefix(trimmed, "*"):
			if cur != nil {
				return nil, bad("table starts before COMMIT of table %q", cur.Name)
			}
			name := trimmed[1:]
			if name == "" || strings.ContainsAny(name, " \t") {
				return nil, bad("bad table name")
			}
			cur = &saveTable{Name: name, Policies: map[string]string{}}
			if name == table {
				if len(wanted.Policies) > 0 || len(wanted.Rules) > 0 {
					return nil, bad("table %q appears twice", name)
				}
				cur = wanted
			}
		case trimmed == "COMMIT":
			if cur == nil {
				return nil, bad("COMMIT outside a table")
			}
			cur = nil
		case strings.HasPrefix(trimmed, ":"):
			if cur == nil {
				return nil, bad("chain outside a table")
			}
			f := strings.Fields(trimmed[1:])
			if len(f) < 2 || len(f) > 3 {
				return nil, bad("want \":CHAIN POLICY [packets:bytes]\"")
			}
			if _, dup := cur.Policies[f[0]]; dup {
				return nil, bad("chain %q declared twice", f[0])
			}
			cur.Policies[f[0]] = f[1]
		case strings.HasPrefix(trimmed, "-A "):
			if cur == nil {
				return nil, bad("rule outside a table")
			}
			args, err := splitArgs(trimmed)
			if err != nil {
				return nil, bad("%v", err)
			}
			if len(args) < 2 {
				return nil, bad("rule without chain")
			}
			r := saveRule{Chain: args[1], Spec: args[2:], Line: trimmed}
			for i := 2; i < len(args); i++ {
				if args[i] == "--comment" {
					if i+1 >= len(args) {
						return nil, bad("--comment without a value")
					}
					r.Comments = append(r.Comments, args[i+1])
					i++
				}
			}
			cur.Rules = append(cur.Rules, r)
		default:
			return nil, bad("unknown line")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read iptables-save output: %w", err)
	}
	if cur != nil {
		return nil, fmt.Errorf("iptables-save output: table %q has no COMMIT", cur.Name)
	}
	return wanted, nil
}

// splitArgs splits a line of iptables-save output into arguments the way
// iptables-restore does: blanks separate arguments, double quotes group
// them, and a backslash takes the next character literally.
func splitArgs(line string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inArg   bool
		quoted  bool
		escaped bool
	)
	for _, c := range line {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\':
			escaped, inArg = true, true
		case c == '"':
			quoted, inArg = !quoted, true
		case (c == ' ' || c == '\t') && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(c)
			inArg = true
		}
	}
	if escaped {
		return nil, errors.New("ends in a backslash")
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
