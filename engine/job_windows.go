package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// job is the Job object the Windows engine puts itself in at start, so that
// every process its installs start (msiexec, wusa, an installer and what
// they start in turn) is in it too. The job has KILL_ON_JOB_CLOSE: when
// the engine's process ends, however it ends, Windows ends what is left in
// the job. At clean-up, killOthers ends them first. BREAKAWAY_OK lets the
// engine start the one process that must outlive it (the directory's
// removal after an idle timeout) outside the job.
type job struct {
	h windows.Handle
}

var (
	jobMu  sync.Mutex
	theJob *job
)

// currentJob is the engine's job, nil before installJob.
func currentJob() *job {
	jobMu.Lock()
	defer jobMu.Unlock()
	return theJob
}

// installJob makes the engine's job and puts the engine's process in it.
func installJob() (*job, error) {
	jobMu.Lock()
	defer jobMu.Unlock()
	if theJob != nil {
		return theJob, nil
	}
	h, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("create job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | windows.JOB_OBJECT_LIMIT_BREAKAWAY_OK
	if _, err := windows.SetInformationJobObject(h, windows.JobObjectExtendedLimitInformation, uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("set up job object: %w", err)
	}
	if err := windows.AssignProcessToJobObject(h, windows.CurrentProcess()); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("put the engine in its job object: %w", err)
	}
	theJob = &job{h: h}
	return theJob, nil
}

// jobProcessList is JOBOBJECT_BASIC_PROCESS_ID_LIST with room for 1024
// processes.
type jobProcessList struct {
	Assigned uint32
	InList   uint32
	IDs      [1024]uintptr
}

// pids lists the processes in the job, the engine's own left out.
func (j *job) pids() ([]uint32, error) {
	var l jobProcessList
	err := windows.QueryInformationJobObject(j.h, windows.JobObjectBasicProcessIdList, uintptr(unsafe.Pointer(&l)), uint32(unsafe.Sizeof(l)), nil)
	if err != nil && !errors.Is(err, windows.ERROR_MORE_DATA) {
		return nil, fmt.Errorf("list the job's processes: %w", err)
	}
	self := uint32(os.Getpid())
	var out []uint32
	for i := uint32(0); i < l.InList && i < uint32(len(l.IDs)); i++ {
		if pid := uint32(l.IDs[i]); pid != self {
			out = append(out, pid)
		}
	}
	return out, nil
}

// killOthers ends every process of the job but the engine and describes
// each ("pid 123 (msiexec.exe)"). Windows installers get no polite signal:
// they are terminated, after grace for those that are already ending.
func (j *job) killOthers(grace time.Duration) ([]string, error) {
	pids, err := j.pids()
	if err != nil || len(pids) == 0 {
		return nil, err
	}
	var out []string
	var errs []error
	for _, pid := range pids {
		name := processName(pid)
		h, err := windows.OpenProcess(windows.PROCESS_TERMINATE|windows.SYNCHRONIZE, false, pid)
		if err != nil {
			continue // gone already
		}
		if err := windows.TerminateProcess(h, 1); err != nil {
			errs = append(errs, fmt.Errorf("end pid %d (%s): %w", pid, name, err))
		} else {
			_, _ = windows.WaitForSingleObject(h, uint32(grace/time.Millisecond))
			out = append(out, fmt.Sprintf("pid %d (%s)", pid, name))
		}
		windows.CloseHandle(h)
	}
	return out, errors.Join(errs...)
}

// processName is the base name of pid's program, "gone" when it cannot be
// told.
func processName(pid uint32) string {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return "gone"
	}
	defer windows.CloseHandle(h)
	buf := make([]uint16, windows.MAX_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		return "unknown"
	}
	return filepath.Base(windows.UTF16ToString(buf[:n]))
}
