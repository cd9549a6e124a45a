package store

// This file is the store's contract with its users (package web, package
// report, package manager's recorder, the CLI). Bodies are in the other
// files of the package.

import (
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
)

// Roles of an account.
const (
	RoleAdmin    = "admin"    // everything, accounts included
	RoleOperator = "operator" // nodes, baselines, runs; not accounts
	RoleViewer   = "viewer"   // reads only
)

// Kinds of run.
const (
	RunDeploy    = "deploy"
	RunInventory = "inventory"
	RunReview    = "review" // a dry run: analysis only
)

// States of a run.
const (
	RunRunning     = "running"
	RunEnded       = "ended"       // finished; its nodes say how
	RunCancelled   = "cancelled"   // finished after a cancel
	RunInterrupted = "interrupted" // the manager died while it ran
)

// Sources of a run.
const (
	SourceCLI = "cli"
	SourceUI  = "ui"
	SourceAPI = "api"
)

// Account is a user of the web UI and API. The password hash never leaves
// the package.
type Account struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
}

// Session is a logged-in browser. Token is only set when the session is
// made (NewSession); the store keeps its SHA-256 alone.
type Session struct {
	Token     string    `json:"-"`
	AccountID int64     `json:"account_id"`
	CSRF      string    `json:"-"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
}

// APIToken is a token for scripts. Secret is only set when it is made.
type APIToken struct {
	ID        int64     `json:"id"`
	AccountID int64     `json:"account_id"`
	Name      string    `json:"name"`
	Secret    string    `json:"-"`
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

// AuditEntry is one thing someone did: started, cancelled or changed what.
type AuditEntry struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	AccountID int64     `json:"account_id"`
	Account   string    `json:"account"`
	Action    string    `json:"action"` // "node.add", "run.start", "run.cancel", "login", ...
	Object    string    `json:"object,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Remote    string    `json:"remote,omitempty"`
}

// Credential is a user name and a secret (password) for nodes. The secret
// is encrypted at rest (AES-256-GCM with the store's key file) and is read
// back only with CredentialSecret, never listed.
type Credential struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
}

// Node is a server the operator registered: one or more addresses (target
// strings as package target parses them: "root@198.18.1.2",
// "bmc://admin@[fd42:5e::2]", a server's BMC first), the credentials by
// reference, and tags (groups).
type Node struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Targets []string `json:"targets"`
	// CredentialID answers SSH (and sudo); BMCCredentialID a bmc://
	// target; 0: none (keys, the SSH agent, or the run's default).
	CredentialID    int64     `json:"credential_id,omitempty"`
	BMCCredentialID int64     `json:"bmc_credential_id,omitempty"`
	Tags            []string  `json:"tags,omitempty"`
	Created         time.Time `json:"created"`
}

// Baseline is a registered baseline directory and what its last check
// found.
type Baseline struct {
	ID         int64              `json:"id"`
	Name       string             `json:"name"`
	Dir        string             `json:"dir"`
	Added      time.Time          `json:"added"`
	Checked    time.Time          `json:"checked,omitzero"`
	Components []ComponentSummary `json:"components"`
	Problems   []Problem          `json:"problems"`
}

// ComponentSummary is one component of a checked baseline.
type ComponentSummary struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Kind     string   `json:"kind"`
	File     string   `json:"file"`
	Size     int64    `json:"size"`
	SHA256   string   `json:"sha256"`
	Targets  []string `json:"targets,omitempty"`
	Requires []string `json:"requires,omitempty"`
}

// Problem is one problem a baseline check found (baseline.Problem).
type Problem struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// InventoryRecord is one node's inventory at one time.
type InventoryRecord struct {
	ID    int64              `json:"id"`
	Node  string             `json:"node"` // the target as the run named it
	RunID string             `json:"run_id,omitempty"`
	Time  time.Time          `json:"time"`
	Inv   *fleetup.Inventory `json:"inventory"`
}

// Run is one run of the manager, started from the CLI, the UI or the API.
type Run struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`   // RunDeploy, RunInventory, RunReview
	Source   string    `json:"source"` // SourceCLI, SourceUI, SourceAPI
	Account  string    `json:"account,omitempty"`
	Baseline string    `json:"baseline,omitempty"` // directory
	Targets  []string  `json:"targets"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	State    string    `json:"state"` // RunRunning, RunEnded, ...
	// Options are the run's options as JSON (runstate.RunOptions for a
	// deploy), kept as they came.
	Options []byte `json:"options,omitempty"`
	// PID and ProcStart are the manager process running it, to tell an
	// interrupted run (runstate.Liveness) from a running one.
	PID       int    `json:"pid,omitempty"`
	ProcStart uint64 `json:"proc_start,omitempty"`
	// Counts, filled by Runs and RunDetail: nodes per end state.
	Counts map[string]int `json:"counts,omitempty"`
}

// RunDetail is a run with every node's result, in the run's order (a node
// that has not ended is absent).
type RunDetail struct {
	Run
	Nodes []orchestrator.NodeResult `json:"nodes"`
}

// EventRecord is one event of a run, numbered in the order it was added.
type EventRecord struct {
	Seq   int64         `json:"seq"`
	RunID string        `json:"run_id"`
	Event fleetup.Event `json:"event"`
}

// The methods of *DB, all safe for concurrent use, every one taking a
// context.Context first (errors wrap ErrNotFound, ErrExists, ErrBadCredentials
// where those apply):
//
//	Open(path, keyFile string) (*DB, error)      // creates and migrates; makes keyFile (0600, 32 random bytes) when missing, refuses one readable by group/others
//	(*DB).Close() error
//	SchemaVersion(ctx) (int, error)
//
//	AccountCount(ctx) (int, error)
//	CreateAccount(ctx, name string, password []byte, role string) (*Account, error)   // argon2id; ErrExists
//	Authenticate(ctx, name string, password []byte) (*Account, error)                 // ErrBadCredentials (same error for unknown name and wrong password)
//	Account(ctx, id int64) (*Account, error)
//	Accounts(ctx) ([]Account, error)
//	SetPassword(ctx, id int64, password []byte) error
//	NewSetupToken(ctx, ttl time.Duration) (string, error)                             // one-time, for the first administrator
//	UseSetupToken(ctx, token string) error                                            // consumes it; ErrNotFound when unknown, used or expired
//	NewSession(ctx, accountID int64, ttl time.Duration) (*Session, error)
//	Session(ctx, token string) (*Session, *Account, error)                            // ErrNotFound when unknown or expired
//	DeleteSession(ctx, token string) error
//	NewAPIToken(ctx, accountID int64, name string) (*APIToken, error)
//	APITokenAccount(ctx, secret string) (*Account, error)
//	APITokens(ctx, accountID int64) ([]APIToken, error)
//	DeleteAPIToken(ctx, accountID, id int64) error
//	AddAudit(ctx, e AuditEntry) error
//	AuditLog(ctx, accountID int64, limit int) ([]AuditEntry, error)                  // accountID 0: everyone's
//
//	PutCredential(ctx, name, user string, secret []byte) (*Credential, error)
//	Credentials(ctx) ([]Credential, error)
//	CredentialSecret(ctx, id int64) (user string, secret []byte, err error)
//	DeleteCredential(ctx, id int64) error                                             // refused while a node refers to it
//
//	AddNode(ctx, n Node) (*Node, error)                                               // ErrExists for a name or a target already registered
//	UpdateNode(ctx, n Node) error
//	DeleteNode(ctx, id int64) error
//	Node(ctx, id int64) (*Node, error)
//	Nodes(ctx, tag string) ([]Node, error)                                            // tag "": all
//
//	AddBaseline(ctx, name, dir string) (*Baseline, error)
//	SetBaselineCheck(ctx, id int64, comps []ComponentSummary, problems []Problem, at time.Time) error
//	Baseline(ctx, id int64) (*Baseline, error)
//	Baselines(ctx) ([]Baseline, error)
//	DeleteBaseline(ctx, id int64) error
//
//	PutInventory(ctx, rec InventoryRecord) error
//	LatestInventory(ctx, node string) (*InventoryRecord, error)
//	LatestInventories(ctx) ([]InventoryRecord, error)                                 // the newest per node
//	InventoryHistory(ctx, node string, limit int) ([]InventoryRecord, error)
//
//	BeginRun(ctx, r Run) error
//	AddEvents(ctx, runID string, evs []fleetup.Event) error
//	NodeEnded(ctx, runID string, r orchestrator.NodeResult) error                     // also PutInventory when r.Inventory is set
//	EndRun(ctx, runID, state string, at time.Time) error
//	Run(ctx, id string) (*RunDetail, error)                                           // id "latest": the run begun last
//	Runs(ctx, kind string, limit int) ([]Run, error)                                  // newest first; kind "": all
//	Events(ctx, runID string, afterSeq int64, limit int) ([]EventRecord, error)
//	MarkInterrupted(ctx, alive func(pid int, procStart uint64) bool) ([]Run, error)   // running runs whose manager is gone
