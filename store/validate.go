package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the store's inputs.
const (
	maxAccountName = 64
	maxName        = 128 // node, credential, baseline and API token names
	maxText        = 4096
	maxTarget      = 512
	maxTargets     = 64
	maxTag         = 32
	maxTags        = 64
	minPassword    = 12
	maxPassword    = 1024
	maxSecret      = 64 << 10
)

// checkAccountName refuses an account name that is not 1-64 characters of
// [A-Za-z0-9._@-].
func checkAccountName(name string) error {
	if name == "" || len(name) > maxAccountName {
		return invalid("account name", name, fmt.Sprintf("must be 1 to %d characters", maxAccountName))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)) {
			return invalid("account name", name, "may hold only letters, digits and . _ @ -")
		}
	}
	return nil
}

// checkRole refuses a role that is not one of the three.
func checkRole(role string) error {
	switch role {
	case RoleAdmin, RoleOperator, RoleViewer:
		return nil
	}
	return invalid("role", role, "must be admin, operator or viewer")
}

// checkPassword refuses a password that is empty, shorter than 12 bytes or
// longer than 1024. The password is never part of the error.
func checkPassword(pw []byte) error {
	switch {
	case len(pw) == 0:
		return invalid("password", "", "empty")
	case len(pw) < minPassword:
		return invalid("password", "", fmt.Sprintf("shorter than %d bytes", minPassword))
	case len(pw) > maxPassword:
		return invalid("password", "", fmt.Sprintf("longer than %d bytes", maxPassword))
	}
	return nil
}

// checkName refuses a name (of a node, credential, baseline or API token)
// that is empty, longer than 128 bytes, not UTF-8, holds a control
// character, or begins or ends with a space.
func checkName(field, name string) error {
	return checkText(field, name, maxName, true)
}

// checkText refuses s when it is longer than max bytes, not UTF-8, or
// holds a control character; when required also when it is empty or
// begins or ends with a space.
func checkText(field, s string, max int, required bool) error {
	switch {
	case required && s == "":
		return invalid(field, s, "empty")
	case len(s) > max:
		return invalid(field, s[:min(len(s), 64)]+"...", fmt.Sprintf("longer than %d bytes", max))
	case !utf8.ValidString(s):
		return invalid(field, s, "not UTF-8")
	case required && strings.TrimSpace(s) != s:
		return invalid(field, s, "begins or ends with a space")
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return invalid(field, s, "holds a control character")
	}
	return nil
}

// checkTargets refuses a node's targets when there are none, too many, an
// empty one, one holding a space or a control character, or the same one
// twice. What a target means is package target's concern: the caller
// validated them.
func checkTargets(targets []string) error {
	if len(targets) == 0 {
		return invalid("targets", "", "a node needs at least one")
	}
	if len(targets) > maxTargets {
		return invalid("targets", "", fmt.Sprintf("more than %d", maxTargets))
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if err := checkText("target", t, maxTarget, true); err != nil {
			return err
		}
		if strings.ContainsFunc(t, unicode.IsSpace) {
			return invalid("target", t, "holds a space")
		}
		if seen[t] {
			return invalid("target", t, "given twice")
		}
		seen[t] = true
	}
	return nil
}

// checkTag refuses a tag that is not 1-32 characters of [a-z0-9._-].
func checkTag(tag string) error {
	if tag == "" || len(tag) > maxTag {
		return invalid("tag", tag, fmt.Sprintf("must be 1 to %d characters", maxTag))
	}
	for _, r := range tag {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return invalid("tag", tag, "may hold only lowercase letters, digits and . _ -")
		}
	}
	return nil
}

// cleanTags checks tags and returns them without duplicates, in their
// order; never nil.
func cleanTags(tags []string) ([]string, error) {
	if len(tags) > maxTags {
		return nil, invalid("tags", "", fmt.Sprintf("more than %d", maxTags))
	}
	out := []string{}
	seen := map[string]bool{}
	for _, t := range tags {
		if err := checkTag(t); err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// jsonText is v as JSON, for a TEXT column.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
