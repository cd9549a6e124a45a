package bmcsim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// state is what a BMC remembers. BMC.mu guards it.
type state struct {
	prof     *profile
	firmware []Firmware
	sessions map[string]*session // by token
	nextSess int

	// jobs are the updates the BMC took, oldest first. On an iDRAC they
	// outlive resets (the Lifecycle Controller's job queue); elsewhere a
	// reset forgets them.
	jobs    []*job
	nextJob int
	busy    *job // the update in progress, if any
	flashes []Flash

	// ilo is iLO's UpdateService Oem.Hpe status.
	ilo iloStatus
	// staged are OpenBMC images applied at the next reset: firmware id ->
	// version.
	staged map[string]string

	uuid, serviceTag string
	power            string // ComputerSystem.PowerState
	started          time.Time
}

// iloStatus is what iLO shows of its one update at a time.
type iloStatus struct {
	State   string // Idle, Uploading, Verifying, Updating, Complete, Error
	Percent int    // FlashProgressPercent, while Updating
	Result  message
}

// session is a login.
type session struct {
	id, token, user string
	created, used   time.Time
}

// job is one firmware update, from when the BMC took the image (or its
// URI) on. Its task (iDRAC, OpenBMC) and job (iDRAC) resources show it.
type job struct {
	id        string // "JID_…" on an iDRAC, "0", "1", … on OpenBMC, "" on iLO
	name      string // the Dell job name, "Firmware Update: iDRAC"
	via       string
	uri       string // TargetUri of the request
	body      string // the request's JSON, for a task's Payload
	targets   []string
	applyTime string // "Immediate" or "OnReset"

	state    string // DMTF TaskState: New, Running, Completed, Exception, Stopping
	dell     string // Dell JobState: New, Downloading, Running, Completed, Failed
	percent  int
	messages []message
	// monitorGone: the OpenBMC task monitor said 204 once and is gone.
	monitorGone bool
	// taskGone: the task resource is gone (a reset), the iDRAC job stays.
	taskGone bool

	flash Flash
}

// message is a Redfish message.
type message struct {
	ID       string
	Text     string
	Args     []string
	Severity string // OK, Warning, Critical
	// dellID, on an iDRAC, is the Lifecycle Controller message id that
	// the job's Message shows ("RED001").
	dellID string
}

func (st *state) init(p *profile, fw []Firmware) {
	st.prof = p
	st.firmware = fw
	st.sessions = map[string]*session{}
	st.staged = map[string]string{}
	st.uuid = newUUID()
	st.serviceTag = "SIM" + randHex(2)[:4]
	st.power = "On"
	st.started = time.Now()
	st.ilo = iloStatus{State: "Idle"}
	if p.flavor == IDRAC {
		// iDRAC job ids grow from a clock-derived number.
		st.nextJob = int(time.Now().Unix()%1e9) * 100
	}
}

// manager is the index of the Manager's firmware entry.
func (st *state) manager() int {
	for i, f := range st.firmware {
		if f.Manager {
			return i
		}
	}
	return -1 // unreachable: Options.withDefaults checks
}

// bios is the index of the BIOS firmware entry, or -1.
func (st *state) bios() int {
	for i, f := range st.firmware {
		if f.BIOS {
			return i
		}
	}
	return -1
}

func (st *state) firmwareByID(id string) int {
	for i, f := range st.firmware {
		if f.ID == id {
			return i
		}
	}
	return -1
}

// newSession logs user in.
func (st *state) newSession(user string) *session {
	st.nextSess++
	var id string
	switch st.prof.flavor {
	case ILO:
		id = user + randHex(8)
	case IDRAC:
		id = fmt.Sprint(st.nextSess)
	default:
		id = randHex(5)
	}
	now := time.Now()
	s := &session{id: id, token: randHex(16), user: user, created: now, used: now}
	st.sessions[s.token] = s
	return s
}

func (st *state) sessionByID(id string) *session {
	for _, s := range st.sessions {
		if s.id == id {
			return s
		}
	}
	return nil
}

// newJobID names the next job.
func (st *state) newJobID() string {
	switch st.prof.flavor {
	case IDRAC:
		st.nextJob++
		return fmt.Sprintf("JID_%012d", st.nextJob)
	case OpenBMC:
		id := fmt.Sprint(st.nextJob)
		st.nextJob++
		return id
	}
	return ""
}

func (st *state) jobByID(id string) *job {
	for _, j := range st.jobs {
		if j.id == id {
			return j
		}
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

func newUUID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// redfishTime formats t as Redfish does.
func redfishTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05+00:00") }
