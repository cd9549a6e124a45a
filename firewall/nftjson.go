package firewall

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// nftRuleset is the part of "nft -j -a list ruleset" this package needs.
type nftRuleset struct {
	Tables []nftTable
	Chains []nftChain
	Rules  []nftRule
}

type nftTable struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type nftChain struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Name   string `json:"name"`
	Type   string `json:"type"`   // base chains only
	Hook   string `json:"hook"`   // base chains only
	Policy string `json:"policy"` // base chains only
}

// base reports whether c is attached to a hook.
func (c nftChain) base() bool { return c.Hook != "" }

type nftRule struct {
	Family  string `json:"family"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Handle  uint64 `json:"handle"`
	Comment string `json:"comment"`
	// Expr keeps only each statement's kind (its single key).
	Expr []map[string]json.RawMessage `json:"expr"`
}

// hasXT reports whether the rule uses an xtables match or target, which
// only iptables-nft makes.
func (r nftRule) hasXT() bool {
	for _, e := range r.Expr {
		if _, ok := e["xt"]; ok {
			return true
		}
	}
	return false
}

// parseNFT parses the JSON output of "nft -j -a list ruleset". Objects
// other than tables, chains and rules (metainfo, sets, maps, elements,
// flowtables, stateful objects) are skipped; so are fields this package
// does not use.
func parseNFT(data []byte) (*nftRuleset, error) {
	var doc struct {
		Nftables []struct {
			Table *nftTable `json:"table"`
			Chain *nftChain `json:"chain"`
			Rule  *nftRule  `json:"rule"`
		} `json:"nftables"`
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &nftRuleset{}, nil // nft prints nothing for an empty ruleset in some versions
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse nft JSON ruleset: %w", err)
	}
	rs := &nftRuleset{}
	for i, o := range doc.Nftables {
		switch {
		case o.Table != nil:
			if o.Table.Family == "" || o.Table.Name == "" {
				return nil, fmt.Errorf("parse nft JSON ruleset: object %d: table without family or name", i)
			}
			rs.Tables = append(rs.Tables, *o.Table)
		case o.Chain != nil:
			if o.Chain.Family == "" || o.Chain.Table == "" || o.Chain.Name == "" {
				return nil, fmt.Errorf("parse nft JSON ruleset: object %d: chain without family, table or name", i)
			}
			rs.Chains = append(rs.Chains, *o.Chain)
		case o.Rule != nil:
			if o.Rule.Family == "" || o.Rule.Table == "" || o.Rule.Chain == "" || o.Rule.Handle == 0 {
				return nil, fmt.Errorf("parse nft JSON ruleset: object %d: rule without family, table, chain or handle", i)
			}
			rs.Rules = append(rs.Rules, *o.Rule)
		}
	}
	return rs, nil
}

// xtTables and xtChains are the names iptables-nft gives its tables and
// built-in chains.
var (
	xtTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}
	xtChains = map[string]bool{"INPUT": true, "FORWARD": true, "OUTPUT": true, "PREROUTING": true, "POSTROUTING": true}
)

type tableKey struct{ family, name string }

// iptablesOwned returns the tables iptables-nft manages, which the NFTables
// backend leaves to IPTables: those with a rule using an xtables
// expression (what nft marks "managed by iptables-nft"), and ip/ip6 tables
// with an iptables table name whose base chains all have iptables' built-in
// chain names (the tables iptables-nft makes, even while they hold only
// rules nft can express natively, or none).
func (rs *nftRuleset) iptablesOwned() map[tableKey]bool {
	owned := map[tableKey]bool{}
	for _, r := range rs.Rules {
		if r.hasXT() {
			owned[tableKey{r.Family, r.Table}] = true
		}
	}
	for _, t := range rs.Tables {
		k := tableKey{t.Family, t.Name}
		if owned[k] || (t.Family != "ip" && t.Family != "ip6") || !xtTables[t.Name] {
			continue
		}
		named, base := true, 0
		for _, c := range rs.Chains {
			if c.Family == t.Family && c.Table == t.Name && c.base() {
				base++
				named = named && xtChains[c.Name]
			}
		}
		if base > 0 && named {
			owned[k] = true
		}
	}
	return owned
}

// inputChains returns the base chains of type filter on the input hook in
// families inet, ip and ip6 that filter (have a drop policy or any rule),
// skipping iptables-nft's tables.
func (rs *nftRuleset) inputChains() []nftChain {
	owned := rs.iptablesOwned()
	rules := map[[3]string]int{}
	for _, r := range rs.Rules {
		rules[[3]string{r.Family, r.Table, r.Chain}]++
	}
	var out []nftChain
	for _, c := range rs.Chains {
		if c.Hook != "input" || c.Type != "filter" || owned[tableKey{c.Family, c.Table}] {
			continue
		}
		if c.Family != "inet" && c.Family != "ip" && c.Family != "ip6" {
			continue
		}
		if c.Policy == "drop" || rules[[3]string{c.Family, c.Table, c.Name}] > 0 {
			out = append(out, c)
		}
	}
	return out
}

// tagged returns the rules, outside iptables-nft's tables, whose comment
// starts with prefix.
func (rs *nftRuleset) tagged(prefix string) []nftRule {
	owned := rs.iptablesOwned()
	var out []nftRule
	for _, r := range rs.Rules {
		if !owned[tableKey{r.Family, r.Table}] && len(r.Comment) >= len(prefix) && r.Comment[:len(prefix)] == prefix {
			out = append(out, r)
		}
	}
	return out
}
