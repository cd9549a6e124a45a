package store

import (
	"errors"
	"fmt"
	"strconv"
)

// The errors the store's methods wrap, to be told apart with errors.Is.
// The message around them names what: "node 7: not found".
var (
	// ErrNotFound is an id, name or token the store does not have (or, for
	// a session or setup token, no longer has: expired or used).
	ErrNotFound = errors.New("not found")
	// ErrExists is a name, id or target the store already has.
	ErrExists = errors.New("already exists")
	// ErrBadCredentials is a failed login or an unknown API token. It says
	// nothing of whether the account exists.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrInUse is something that cannot be deleted while another thing
	// refers to it (a credential that nodes use).
	ErrInUse = errors.New("in use")
)

// ValidationError is an input a method refuses: which field, the value
// (empty for a secret), and why.
type ValidationError struct {
	Field  string
	Value  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("invalid %s %s: %s", e.Field, strconv.Quote(e.Value), e.Reason)
}

// invalid is a *ValidationError.
func invalid(field, value, reason string) error {
	return &ValidationError{Field: field, Value: value, Reason: reason}
}

// SchemaTooNewError is a database written by a newer fleetup than this
// one: its schema has migrations this binary does not know, so Open
// refuses it.
type SchemaTooNewError struct {
	Version int // the database's
	Known   int // the latest this fleetup knows
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("schema version %d is newer than this fleetup (%d); upgrade fleetup", e.Version, e.Known)
}
