// Command netsh is the lab's stand-in for Windows' netsh.exe (Wine's does
// nothing for advfirewall): built for GOOS=windows and installed as a lab
// prefix's system32\netsh.exe, it keeps the rules of
//
//	netsh advfirewall firewall add rule name=N dir=in|out action=allow|block [protocol=P] [localport=L] [remoteip=A] ...
//	netsh advfirewall firewall delete rule name=N
//	netsh advfirewall firewall show rule name=N|all
//
// in %SystemRoot%\fleetup-lab-firewall.json (C:\Windows\...), so that tests
// can see which rules a run left. Output and exit codes are netsh's: 0 and
// "Ok.", or 1 and "No rules match the specified criteria.".
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Rule is one firewall rule as the JSON file holds it.
type Rule struct {
	Name      string `json:"name"`
	Dir       string `json:"dir"`
	Action    string `json:"action"`
	Protocol  string `json:"protocol,omitempty"`
	LocalPort string `json:"localport,omitempty"`
	RemoteIP  string `json:"remoteip,omitempty"`
}

// FileName is the rule file's name in %SystemRoot%.
const FileName = "fleetup-lab-firewall.json"

const noMatch = "No rules match the specified criteria."

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) int {
	lower := make([]string, len(args))
	for i, a := range args {
		lower[i] = strings.ToLower(a)
	}
	if len(args) < 4 || lower[0] != "advfirewall" || lower[1] != "firewall" || lower[3] != "rule" {
		fmt.Fprintf(out, "The following command was not found: %s.\n", strings.Join(args, " "))
		return 1
	}
	opts := map[string]string{}
	for _, a := range args[4:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			fmt.Fprintf(out, "A specified value is not valid: %s.\n", a)
			return 1
		}
		opts[strings.ToLower(k)] = strings.Trim(v, `"`)
	}
	path := filepath.Join(systemRoot(), FileName)
	rules, err := load(path)
	if err != nil {
		fmt.Fprintf(out, "An error occurred: %v\n", err)
		return 1
	}
	name, hasName := opts["name"]
	switch lower[2] {
	case "add":
		r := Rule{Name: name, Dir: strings.ToLower(opts["dir"]), Action: strings.ToLower(opts["action"]),
			Protocol: opts["protocol"], LocalPort: opts["localport"], RemoteIP: opts["remoteip"]}
		if !hasName || name == "" || (r.Dir != "in" && r.Dir != "out") || (r.Action != "allow" && r.Action != "block" && r.Action != "bypass") {
			fmt.Fprintln(out, "A specified value is not valid: add rule needs name=, dir=in|out and action=allow|block|bypass.")
			return 1
		}
		if err := save(path, append(rules, r)); err != nil {
			fmt.Fprintf(out, "An error occurred: %v\n", err)
			return 1
		}
		fmt.Fprint(out, "Ok.\n\n")
		return 0
	case "delete":
		if !hasName {
			fmt.Fprintln(out, "A specified value is not valid: delete rule needs name=.")
			return 1
		}
		var kept []Rule
		for _, r := range rules {
			if !strings.EqualFold(r.Name, name) {
				kept = append(kept, r)
			}
		}
		deleted := len(rules) - len(kept)
		if deleted == 0 {
			fmt.Fprintf(out, "%s\n\n", noMatch)
			return 1
		}
		if err := save(path, kept); err != nil {
			fmt.Fprintf(out, "An error occurred: %v\n", err)
			return 1
		}
		fmt.Fprintf(out, "\nDeleted %d rule(s).\nOk.\n\n", deleted)
		return 0
	case "show":
		if !hasName {
			fmt.Fprintln(out, "A specified value is not valid: show rule needs name=.")
			return 1
		}
		n := 0
		for _, r := range rules {
			if strings.EqualFold(name, "all") || strings.EqualFold(r.Name, name) {
				show(out, r)
				n++
			}
		}
		if n == 0 {
			fmt.Fprintf(out, "%s\n\n", noMatch)
			return 1
		}
		fmt.Fprint(out, "Ok.\n\n")
		return 0
	}
	fmt.Fprintf(out, "The following command was not found: %s.\n", strings.Join(args, " "))
	return 1
}

func show(out io.Writer, r Rule) {
	any := func(s string) string {
		if s == "" {
			return "Any"
		}
		return s
	}
	dir := map[string]string{"in": "In", "out": "Out"}[r.Dir]
	action := strings.ToUpper(r.Action[:1]) + r.Action[1:]
	fmt.Fprintf(out, "\nRule Name:                            %s\n", r.Name)
	fmt.Fprintln(out, strings.Repeat("-", 70))
	for _, kv := range [][2]string{
		{"Enabled", "Yes"}, {"Direction", dir}, {"Profiles", "Domain,Private,Public"},
		{"Grouping", ""}, {"LocalIP", "Any"}, {"RemoteIP", any(r.RemoteIP)},
		{"Protocol", any(r.Protocol)}, {"LocalPort", any(r.LocalPort)}, {"RemotePort", "Any"},
		{"Edge traversal", "No"}, {"Action", action},
	} {
		fmt.Fprintf(out, "%-38s%s\n", kv[0]+":", kv[1])
	}
}

func systemRoot() string {
	if d := os.Getenv("SystemRoot"); d != "" {
		return d
	}
	return `C:\Windows`
}

func load(path string) ([]Rule, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rules []Rule
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, nil
}

// save writes the rules (write, then rename; an empty list is an empty
// JSON array, not a missing file).
func save(path string, rules []Rule) error {
	if rules == nil {
		rules = []Rule{}
	}
	b, err := json.MarshalIndent(rules, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
