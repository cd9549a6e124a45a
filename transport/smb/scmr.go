package smb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	dcerrors "github.com/oiweiwei/go-msrpc/dcerpc/errors"
	"github.com/oiweiwei/go-msrpc/msrpc/erref/win32"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	smb2 "github.com/oiweiwei/go-smb2.fork"
)

// ErrNoService: the service manager knows no service of that name.
var ErrNoService = errors.New("no such service")

// SCMError is a Win32 error the service manager answered an operation
// with. errors.Is finds ErrAccessDenied for 5 and ErrNoService for 1060.
type SCMError struct {
	// Op says what was asked: "open the service manager", "create the
	// service fleetup-x", ...
	Op   string
	Code uint32
	// Fault is the RPC fault the server answered with instead (e.g.
	// "nca_op_rng_error": it does not implement the operation).
	Fault string
}

func (e *SCMError) Error() string {
	if e.Fault != "" {
		why := "RPC fault " + e.Fault
		if e.Fault == "nca_op_rng_error" {
			why = "the server does not implement this operation (RPC fault nca_op_rng_error)"
		}
		return fmt.Sprintf("the service manager refused to %s: %s", e.Op, why)
	}
	return fmt.Sprintf("the service manager refused to %s: %s (%d)", e.Op, win32Text(e.Code), e.Code)
}

// codeOf returns the Win32 code of an *SCMError.
func codeOf(err error) (uint32, bool) {
	var se *SCMError
	if errors.As(err, &se) && se.Fault == "" {
		return se.Code, true
	}
	return 0, false
}

// rpcFault turns an RPC fault the server answered op with into an
// *SCMError; other errors are classified as the share's are.
func rpcFault(op string, err error) error {
	var de *dcerrors.Error
	if errors.As(err, &de) {
		if code, ok := de.Value.(uint32); ok {
			return &SCMError{Op: op, Code: code}
		}
	}
	var we *win32.Error
	if errors.As(err, &we) {
		return &SCMError{Op: op, Code: we.Code}
	}
	msg := err.Error()
	i := strings.Index(msg, "fault: ")
	if i < 0 {
		return fmt.Errorf("%s: %w", op, classify(err))
	}
	f := msg[i+len("fault: "):]
	if j := strings.IndexAny(f, " ("); j >= 0 {
		f = f[:j]
	}
	return &SCMError{Op: op, Fault: f}
}

// Is implements errors.Is.
func (e *SCMError) Is(target error) bool {
	switch target {
	case ErrAccessDenied:
		return e.Code == 5
	case ErrNoService:
		return e.Code == errServiceDoesNotExist && e.Fault == ""
	case errors.ErrUnsupported:
		return e.Fault == "nca_op_rng_error"
	}
	return false
}

// Win32 error codes of the service manager ([MS-ERREF] 2.2).
const (
	errServiceDoesNotExist   = 1060
	errServiceNotActive      = 1062
	errServiceAlreadyRunning = 1056
	errServiceMarkedDelete   = 1072
	errServiceExists         = 1073
)

var win32Texts = map[uint32]string{
	2:                      "the file was not found",
	3:                      "the path was not found",
	5:                      "access denied",
	6:                      "invalid handle",
	87:                     "invalid parameter",
	193:                    "not a valid Windows program",
	1052:                   "the control is not valid for this service",
	1053:                   "the service did not respond to the start or control request in time",
	1056:                   "the service is already running",
	1057:                   "the account name is invalid or does not exist",
	1058:                   "the service is disabled",
	errServiceDoesNotExist: "the service does not exist",
	1061:                   "the service cannot accept control messages now",
	errServiceNotActive:    "the service has not been started",
	1069:                   "the service did not start due to a logon failure",
	errServiceMarkedDelete: "the service has been marked for deletion",
	errServiceExists:       "the service exists already",
	1115:                   "the system is shutting down",
	1722:                   "the RPC server is unavailable",
	1726:                   "the remote procedure call failed",
	1727:                   "the remote procedure call failed and did not execute",
}

func win32Text(code uint32) string {
	if t, ok := win32Texts[code]; ok {
		return t
	}
	return "Win32 error"
}

// Service states (SERVICE_STATUS dwCurrentState).
const (
	StateStopped         = 1
	StateStartPending    = 2
	StateStopPending     = 3
	StateRunning         = 4
	StateContinuePending = 5
	StatePausePending    = 6
	StatePaused          = 7
)

// Access rights and service parameters ([MS-SCMR] 2.2).
const (
	scManagerConnect        = 0x0001
	scManagerCreateService  = 0x0002
	scManagerEnumerate      = 0x0004
	serviceQueryStatus      = 0x0004
	serviceStart            = 0x0010
	serviceStop             = 0x0020
	serviceDelete           = 0x00010000
	serviceAllAccess        = 0x000F01FF
	serviceWin32OwnProcess  = 0x00000010
	serviceDemandStart      = 0x00000003
	serviceErrorNormal      = 0x00000001
	serviceControlStop      = 0x00000001
	scmCloseTimeout         = 5 * time.Second
	localSystemAccount      = "LocalSystem"
	svcctlBindingHostMarker = "fleetup-node"
)

// ServiceConfig is a service to create: own process, demand start, run as
// LocalSystem.
type ServiceConfig struct {
	Name        string
	DisplayName string
	// BinaryPath is the command line, quoted as Windows wants it.
	BinaryPath string
}

// SCM is a connection to the node's service manager over \PIPE\svcctl:
// its own SMB session (same credentials, same dialect, signed, and
// encrypted on 3.x), with DCE/RPC bound without security of its own
// (SMB carries the authentication). Every operation opens the service by
// name and closes its handle again.
type SCM struct {
	sess    *Session
	conn    dcerpc.Conn
	client  svcctl.SvcctlClient
	scm     *svcctl.Handle
	tcp     net.Conn
	timeout time.Duration

	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
}

// pipeDialer dials the session's address whatever the binding names, and
// keeps the connection so that a call that overruns its deadline can end
// it.
type pipeDialer struct {
	addr string
	mu   sync.Mutex
	conn net.Conn
}

func (d *pipeDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, d.addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	return c, nil
}

func (d *pipeDialer) get() net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn
}

// OpenSCM connects to the service manager of the session's node with the
// rights to create, start, stop, query and delete services.
func (s *Session) OpenSCM(ctx context.Context) (*SCM, error) {
	var pw []byte
	if s.opts.Password != nil {
		var err error
		if pw, err = s.opts.Password(); err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
	}
	s.mu.Lock()
	addr, dialect, encrypted := s.addr, s.dialect, s.encrypted
	s.mu.Unlock()
	neg := smb2.Negotiator{RequireMessageSigning: true, SpecifiedDialect: uint16(dialect), UseMessageEncryption: encrypted}
	dialer := &smb2.Dialer{
		Negotiator: neg,
		Initiator:  &smb2.NTLMInitiator{User: s.opts.User, Domain: s.opts.Domain, Password: string(pw)},
	}
	clear(pw)
	pd := &pipeDialer{addr: addr}
	m := &SCM{sess: s, timeout: s.opts.timeout()}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	// The RPC transport's goroutines live as long as the context it was
	// bound with: one without the deadline (bounded keeps the deadline).
	life := context.WithoutCancel(ctx)
	conn, err := bounded(ctx, nil, func() (dcerpc.Conn, error) {
		return dcerpc.Dial(life, "ncacn_np:"+svcctlBindingHostMarker+"[svcctl]",
			dcerpc.WithSMBDialer(dialer), dcerpc.WithDialer(pd), dcerpc.WithTimeout(m.timeout))
	})
	if err != nil {
		return nil, fmt.Errorf("connect to the service manager: %w", classify(err))
	}
	m.conn = conn
	client, err := bounded(ctx, nil, func() (svcctl.SvcctlClient, error) {
		return svcctl.NewSvcctlClient(life, conn, dcerpc.WithInsecure())
	})
	if err != nil {
		m.drop(pd)
		return nil, fmt.Errorf("connect to the service manager over \\PIPE\\svcctl: %w", classify(err))
	}
	m.client = client
	m.tcp = pd.get()
	resp, err := bounded(ctx, m.tcp, func() (*svcctl.OpenSCMWResponse, error) {
		return client.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{
			DesiredAccess: scManagerConnect | scManagerCreateService | scManagerEnumerate,
		})
	})
	if err != nil {
		m.drop(pd)
		err = rpcFault("open the service manager", err)
		if se, ok := err.(*SCMError); ok {
			se.Op = "open for creating services"
		}
		return nil, err
	}
	if resp.Return != 0 {
		m.drop(pd)
		return nil, &SCMError{Op: "open for creating services", Code: resp.Return}
	}
	m.scm = resp.SCM
	return m, nil
}

func (m *SCM) drop(pd *pipeDialer) {
	if c := pd.get(); c != nil {
		_ = c.Close()
	}
}

// call runs op under the SCM's deadline; an overrun ends the connection.
func (m *SCM) call(ctx context.Context, op func(ctx context.Context) error) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	_, err := bounded(ctx, m.tcp, func() (struct{}, error) { return struct{}{}, op(ctx) })
	var se *SCMError
	// After an RPC fault the library closes the pipe: the SCM is done.
	if errors.Is(err, ErrServerGone) || errors.As(err, &se) && se.Fault != "" {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
	}
	return err
}

// CreateService creates the service (own process, demand start,
// LocalSystem).
func (m *SCM) CreateService(ctx context.Context, cfg ServiceConfig) error {
	return m.call(ctx, func(ctx context.Context) error {
		resp, err := m.client.CreateServiceW(ctx, &svcctl.CreateServiceWRequest{
			ServiceManager:   m.scm,
			ServiceName:      cfg.Name,
			DisplayName:      cfg.DisplayName,
			DesiredAccess:    serviceAllAccess,
			ServiceType:      serviceWin32OwnProcess,
			StartType:        serviceDemandStart,
			ErrorControl:     serviceErrorNormal,
			BinaryPathName:   cfg.BinaryPath,
			ServiceStartName: localSystemAccount,
		})
		if err != nil {
			return rpcFault("create the service "+cfg.Name, err)
		}
		if resp.Return != 0 {
			return &SCMError{Op: "create the service " + cfg.Name, Code: resp.Return}
		}
		m.closeHandle(ctx, resp.Service)
		return nil
	})
}

// withService opens name with access and runs f on its handle, closing
// the handle after.
func (m *SCM) withService(ctx context.Context, name string, access uint32, what string, f func(ctx context.Context, h *svcctl.Handle) error) error {
	return m.call(ctx, func(ctx context.Context) error {
		resp, err := m.client.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: m.scm, ServiceName: name, DesiredAccess: access})
		if err != nil {
			return rpcFault("open the service "+name+" to "+what, err)
		}
		if resp.Return != 0 {
			return &SCMError{Op: "open the service " + name + " to " + what, Code: resp.Return}
		}
		defer m.closeHandle(ctx, resp.Service)
		return f(ctx, resp.Service)
	})
}

func (m *SCM) closeHandle(ctx context.Context, h *svcctl.Handle) {
	if h == nil {
		return
	}
	_, _ = m.client.CloseService(ctx, &svcctl.CloseServiceRequest{ServiceObject: h})
}

// StartService starts name; one already running is no error.
func (m *SCM) StartService(ctx context.Context, name string) error {
	return m.withService(ctx, name, serviceStart|serviceQueryStatus, "start it", func(ctx context.Context, h *svcctl.Handle) error {
		resp, err := m.client.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: h})
		if err != nil {
			err = rpcFault("start the service "+name, err)
			if c, ok := codeOf(err); ok && c == errServiceAlreadyRunning {
				return nil
			}
			return err
		}
		if resp.Return != 0 && resp.Return != errServiceAlreadyRunning {
			return &SCMError{Op: "start the service " + name, Code: resp.Return}
		}
		return nil
	})
}

// QueryServiceStatus returns name's current state (StateRunning, ...);
// a service that does not exist is ErrNoService.
func (m *SCM) QueryServiceStatus(ctx context.Context, name string) (uint32, error) {
	var state uint32
	err := m.withService(ctx, name, serviceQueryStatus, "query it", func(ctx context.Context, h *svcctl.Handle) error {
		resp, err := m.client.QueryServiceStatus(ctx, &svcctl.QueryServiceStatusRequest{Service: h})
		if err != nil {
			return rpcFault("query the service "+name, err)
		}
		if resp.Return != 0 {
			return &SCMError{Op: "query the service " + name, Code: resp.Return}
		}
		if resp.ServiceStatus != nil {
			state = resp.ServiceStatus.CurrentState
		}
		return nil
	})
	return state, err
}

// StopService asks name to stop (ControlService STOP) and returns the
// state it reported; one not running is no error (StateStopped).
func (m *SCM) StopService(ctx context.Context, name string) (uint32, error) {
	var state uint32
	err := m.withService(ctx, name, serviceStop|serviceQueryStatus, "stop it", func(ctx context.Context, h *svcctl.Handle) error {
		resp, err := m.client.ControlService(ctx, &svcctl.ControlServiceRequest{Service: h, Control: serviceControlStop})
		if err != nil {
			err = rpcFault("stop the service "+name, err)
			if c, ok := codeOf(err); ok && c == errServiceNotActive {
				state = StateStopped
				return nil
			}
			return err
		}
		if resp.Return == errServiceNotActive {
			state = StateStopped
			return nil
		}
		if resp.Return != 0 {
			return &SCMError{Op: "stop the service " + name, Code: resp.Return}
		}
		if resp.ServiceStatus != nil {
			state = resp.ServiceStatus.CurrentState
		}
		return nil
	})
	return state, err
}

// DeleteService marks name for deletion (it goes once stopped and every
// handle is closed); one that does not exist is ErrNoService, one marked
// already no error.
func (m *SCM) DeleteService(ctx context.Context, name string) error {
	return m.withService(ctx, name, serviceDelete, "delete it", func(ctx context.Context, h *svcctl.Handle) error {
		resp, err := m.client.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: h})
		if err != nil {
			err = rpcFault("delete the service "+name, err)
			if c, ok := codeOf(err); ok && c == errServiceMarkedDelete {
				return nil
			}
			return err
		}
		if resp.Return != 0 && resp.Return != errServiceMarkedDelete {
			return &SCMError{Op: "delete the service " + name, Code: resp.Return}
		}
		return nil
	})
}

// Close closes the service manager's handle and the connection, bounded.
func (m *SCM) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		wasClosed := m.closed
		m.closed = true
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), scmCloseTimeout)
		defer cancel()
		if !wasClosed && m.scm != nil {
			_, _ = bounded(ctx, m.tcp, func() (struct{}, error) { m.closeHandle(ctx, m.scm); return struct{}{}, nil })
		}
		if m.conn != nil {
			_, _ = bounded(ctx, m.tcp, func() (struct{}, error) { return struct{}{}, m.conn.Close(ctx) })
		}
		if m.tcp != nil {
			_ = m.tcp.Close()
		}
	})
	return nil
}
