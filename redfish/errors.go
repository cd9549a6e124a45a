package redfish

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrClosed is returned by every call on a closed Client.
	ErrClosed = errors.New("redfish: client closed")
	// ErrResponseTooLarge is a response body beyond Config.MaxBody.
	ErrResponseTooLarge = errors.New("response body too large")
	// ErrForeignURI is a URI (Location, @odata.id, action target,
	// redirect) that is not on the BMC's own endpoint. It is never
	// followed.
	ErrForeignURI = errors.New("URI is not on the BMC's endpoint")
	// ErrNotSupported is an update method the BMC does not advertise.
	ErrNotSupported = errors.New("not supported by this BMC")
	// ErrOutcomeUnknown is an update the BMC stopped reporting on before
	// saying it completed or failed: an iLO back to Idle after a reset, a
	// task that no longer exists, an update accepted without a task.
	// The caller reads the version back to know.
	ErrOutcomeUnknown = errors.New("the BMC does not say how the update ended: read the version back")
	// ErrSizeMismatch is an image whose reader did not give exactly the
	// announced number of bytes.
	ErrSizeMismatch = errors.New("image size differs from the announced size")
)

// UnreachableError is a BMC that could not be reached, or stopped
// answering: the connection was refused, timed out or broke, or the
// service answered with a server error (503 while it starts).
type UnreachableError struct {
	Endpoint string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("redfish at %s: unreachable: %v", e.Endpoint, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// TLSError is a TLS handshake that failed for another reason than the
// network: the caller's verification refused the BMC's certificate (Err is,
// or wraps, the caller's error), or the peer does not speak TLS.
type TLSError struct {
	Endpoint string
	Err      error
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("redfish at %s: TLS handshake refused: %v", e.Endpoint, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// AuthError is a BMC that refused the login (401 or 403 on session
// creation), or kept refusing a freshly created session.
type AuthError struct {
	Endpoint string
	User     string
	Status   int
	// Messages are the BMC's own words, if it gave any.
	Messages []string
}

func (e *AuthError) Error() string {
	s := fmt.Sprintf("redfish at %s: login as %q refused (%d %s)", e.Endpoint, e.User, e.Status, http.StatusText(e.Status))
	if len(e.Messages) > 0 {
		s += ": " + strings.Join(e.Messages, "; ")
	}
	return s
}

// NotRedfishError is an endpoint that answers HTTPS but is not a Redfish
// service: no JSON service root at /redfish/v1/.
type NotRedfishError struct {
	Endpoint string
	Reason   string
}

func (e *NotRedfishError) Error() string {
	return fmt.Sprintf("%s is not a Redfish service: %s", e.Endpoint, e.Reason)
}

// StatusError is a request the BMC answered with an unexpected status.
type StatusError struct {
	Endpoint string
	Method   string
	URI      string // the path on the endpoint
	Status   int
	// Messages are the BMC's own words (error.message and
	// @Message.ExtendedInfo), sanitized and bounded.
	Messages []string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("redfish at %s: %s %s: %d %s", e.Endpoint, e.Method, e.URI, e.Status, http.StatusText(e.Status))
	if len(e.Messages) > 0 {
		s += ": " + strings.Join(e.Messages, "; ")
	}
	return s
}

// UpdateError is an update the BMC says failed.
type UpdateError struct {
	Endpoint string
	JobID    string // the task or job id; empty for HPE's state machine
	// State is the BMC's final state: TaskState, JobState or
	// Oem.Hpe.State ("Exception", "Failed", "Error"...).
	State string
	// Messages are the BMC's messages in its final word on the update
	// ("Message (MessageId)", each once): the failed task's Messages (a
	// task keeps its history) and Dell's job Message, or Oem.Hpe.Result.
	Messages []string
}

func (e *UpdateError) Error() string {
	job := ""
	if e.JobID != "" {
		job = " " + e.JobID
	}
	s := fmt.Sprintf("redfish at %s: update%s failed: %s", e.Endpoint, job, e.State)
	if len(e.Messages) > 0 {
		s += ": " + strings.Join(e.Messages, "; ")
	}
	return s
}

// ResetTimeoutError is a BMC that stopped answering and did not come back
// within the time allowed for a reset.
type ResetTimeoutError struct {
	Endpoint string
	Waited   time.Duration
	// Last is the last failure seen while waiting.
	Last error
}

func (e *ResetTimeoutError) Error() string {
	s := fmt.Sprintf("redfish at %s: the service did not come back within %s", e.Endpoint, e.Waited.Round(time.Millisecond))
	if e.Last != nil {
		s += fmt.Sprintf(" (last: %v)", e.Last)
	}
	return s
}
