package smb

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	smb2 "github.com/oiweiwei/go-smb2.fork"
)

// Sentinel errors of the package. Every error a Session returns wraps one
// of them, or an *AuthError, when its cause is known.
var (
	// ErrNoShare: the server has no share of that name (ADMIN$ is off, or
	// the node is not a Windows server).
	ErrNoShare = errors.New("no such share")
	// ErrAccessDenied: the server refused the operation to this user.
	ErrAccessDenied = errors.New("access denied")
	// ErrServerGone: the connection to the server broke, or a call did not
	// finish within its deadline (the session is closed then).
	ErrServerGone = errors.New("the SMB server stopped answering")
	// ErrDialect: the server speaks no dialect fleetup accepts (SMB 2.1 or
	// newer), or no encryption where it was required.
	ErrDialect = errors.New("unacceptable SMB dialect")
	// ErrLocked: a file is in use on the server (a running program).
	ErrLocked = errors.New("the file is in use")
	// ErrTooLarge: ReadFile found a file beyond the caller's bound.
	ErrTooLarge = errors.New("file too large")
	// ErrClosed: the session was closed.
	ErrClosed = errors.New("smb: session closed")
)

// AuthError is a session set-up the server refused for the credentials:
// a wrong user or password, a locked or disabled account.
type AuthError struct {
	User   string
	Status string // the NTSTATUS name, e.g. "STATUS_LOGON_FAILURE"
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("the server refused the log-on of %q (%s): wrong user name or password, or the account is locked or disabled", e.User, e.Status)
}

// NT status codes the package tells apart ([MS-ERREF] 2.3).
const (
	statusAccessDenied       = 0xC0000022
	statusNameNotFound       = 0xC0000034
	statusNameCollision      = 0xC0000035
	statusPathNotFound       = 0xC000003A
	statusSharingViolation   = 0xC0000043
	statusDeletePending      = 0xC0000056
	statusWrongPassword      = 0xC000006A
	statusLogonFailure       = 0xC000006D
	statusAccountRestriction = 0xC000006E
	statusPasswordExpired    = 0xC0000071
	statusAccountDisabled    = 0xC0000072
	statusNotSupported       = 0xC00000BB
	statusNetNameDeleted     = 0xC00000C9
	statusBadNetworkName     = 0xC00000CC
	statusDirNotEmpty        = 0xC0000101
	statusCannotDelete       = 0xC0000121
	statusAccountExpired     = 0xC0000193
	statusSessionDeleted     = 0xC0000203
	statusAccountLockedOut   = 0xC0000234
	statusInvalidParameter   = 0xC000000D
	statusFileClosed         = 0xC0000128
	statusNoSuchFile         = 0xC000000F // what impacket (and some NAS) answer for a missing file
)

var statusNames = map[uint32]string{
	statusAccessDenied:       "STATUS_ACCESS_DENIED",
	statusNameNotFound:       "STATUS_OBJECT_NAME_NOT_FOUND",
	statusNameCollision:      "STATUS_OBJECT_NAME_COLLISION",
	statusPathNotFound:       "STATUS_OBJECT_PATH_NOT_FOUND",
	statusSharingViolation:   "STATUS_SHARING_VIOLATION",
	statusDeletePending:      "STATUS_DELETE_PENDING",
	statusWrongPassword:      "STATUS_WRONG_PASSWORD",
	statusLogonFailure:       "STATUS_LOGON_FAILURE",
	statusAccountRestriction: "STATUS_ACCOUNT_RESTRICTION",
	statusPasswordExpired:    "STATUS_PASSWORD_EXPIRED",
	statusAccountDisabled:    "STATUS_ACCOUNT_DISABLED",
	statusNotSupported:       "STATUS_NOT_SUPPORTED",
	statusNetNameDeleted:     "STATUS_NETWORK_NAME_DELETED",
	statusBadNetworkName:     "STATUS_BAD_NETWORK_NAME",
	statusDirNotEmpty:        "STATUS_DIRECTORY_NOT_EMPTY",
	statusCannotDelete:       "STATUS_CANNOT_DELETE",
	statusAccountExpired:     "STATUS_ACCOUNT_EXPIRED",
	statusSessionDeleted:     "STATUS_USER_SESSION_DELETED",
	statusAccountLockedOut:   "STATUS_ACCOUNT_LOCKED_OUT",
	statusInvalidParameter:   "STATUS_INVALID_PARAMETER",
	statusFileClosed:         "STATUS_FILE_CLOSED",
	statusNoSuchFile:         "STATUS_NO_SUCH_FILE",
}

// statusOf returns the NT status a server answered with, if err carries one.
func statusOf(err error) (uint32, bool) {
	var re *smb2.ResponseError
	if errors.As(err, &re) {
		return re.Code, true
	}
	return 0, false
}

func statusName(code uint32) string {
	if n, ok := statusNames[code]; ok {
		return n
	}
	return fmt.Sprintf("NTSTATUS 0x%08X", code)
}

// classified is an error of the library with the package's word on it:
// errors.Is finds the sentinel and os.ErrNotExist where they apply.
type classified struct {
	kind error
	err  error
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() []error {
	return []error{e.kind, e.err}
}

// classify wraps err of a share operation with the sentinel of its cause.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if code, ok := statusOf(err); ok {
		switch code {
		case statusAccessDenied:
			return &classified{ErrAccessDenied, err}
		case statusSharingViolation, statusCannotDelete, statusDeletePending:
			return &classified{ErrLocked, err}
		case statusBadNetworkName:
			return &classified{ErrNoShare, err}
		case statusNetNameDeleted, statusSessionDeleted:
			return &classified{ErrServerGone, err}
		case statusNameNotFound, statusPathNotFound, statusNoSuchFile:
			return &classified{os.ErrNotExist, err}
		}
		return err
	}
	if errors.Is(err, os.ErrPermission) {
		// The library's own mapping of STATUS_ACCESS_DENIED.
		return &classified{ErrAccessDenied, err}
	}
	if isTransport(err) {
		return &classified{ErrServerGone, err}
	}
	return err
}

func isTransport(err error) bool {
	var te *smb2.TransportError
	var ne net.Error
	return errors.As(err, &te) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}
