package bmcsim

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// An update goes through these steps, each flavor showing them its way:
//
//	transfer  the image arrives: pulled from ImageURI, or pushed
//	verify    the header is read and the target found
//	flash     FlashTime passes, with progress
//	apply     the inventory changes; the Manager's firmware resets the BMC
//
// One update runs at a time. Once the image is in, the update belongs to
// the BMC: a client that goes away does not stop it, Close does.

// failKind says why an update failed.
type failKind int

const (
	failTransfer      failKind = iota // the image could not be fetched
	failInterrupted                   // the transfer broke off: a truncated image
	failInvalid                       // the image has no usable header
	failNotApplicable                 // no such target here, or not updateable, or not among Targets
	failClosed                        // the BMC was closed or reset meanwhile
)

// updateError is a failed update: why, and the BMC's words for it.
type updateError struct {
	kind   failKind
	detail string
}

func (e *updateError) Error() string { return e.detail }

// reqError is a request the BMC refuses at once.
type reqError struct {
	status int
	msg    message
}

// verifyTime is how long verifying an image takes.
func (b *BMC) verifyTime() time.Duration { return min(b.opts.FlashTime/5, 200*time.Millisecond) }

// sleep waits d, or until the BMC closes (false).
func (b *BMC) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

// spawn runs f in a goroutine Close waits for, unless the BMC is closed.
func (b *BMC) spawn(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// beginUpdate takes on a new update, unless one runs or the BMC is not up.
func (b *BMC) beginUpdate(via string) (*job, *reqError) {
	p := b.prof
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.phase != phaseUp {
		return nil, &reqError{http.StatusServiceUnavailable, p.baseMsg("ServiceTemporarilyUnavailable", "30")}
	}
	if b.st.busy != nil {
		if p.flavor == ILO {
			return nil, &reqError{http.StatusBadRequest, message{ID: p.oem + ".FirmwareFlashAlreadyInProgress",
				Text: "A firmware flash operation is already in progress.", Severity: "Warning"}}
		}
		return nil, &reqError{http.StatusServiceUnavailable, p.baseMsg("ServiceTemporarilyUnavailable", "30")}
	}
	j := &job{
		via:       via,
		name:      "Firmware Update",
		state:     "New",
		dell:      "New",
		applyTime: "Immediate",
		flash:     Flash{Via: via, Started: b.now()},
	}
	b.st.busy = j
	if p.flavor == ILO {
		b.st.ilo = iloStatus{State: "Uploading"}
	}
	return j, nil
}

// publishLocked gives j its id and shows its task (and, on an iDRAC, its
// job). iLO shows no task for an update. The caller holds b.mu.
func (b *BMC) publishLocked(j *job) {
	if b.prof.flavor == ILO {
		return
	}
	j.id = b.st.newJobID()
	j.state = "Running"
	if b.prof.flavor == OpenBMC {
		j.messages = append(j.messages, message{ID: "TaskEvent.1.0.TaskStarted",
			Text: fmt.Sprintf("The task with Id '%s' has started.", j.id), Args: []string{j.id}, Severity: "OK"})
	}
	b.st.jobs = append(b.st.jobs, j)
	// Keep the job queue short, as BMCs do.
	for len(b.st.jobs) > 64 && b.st.jobs[0].finished() {
		b.st.jobs = b.st.jobs[1:]
	}
}

// progress records transfer progress: bytes so far of total (-1:
// unknown). The transfer is the first 30% of a task.
func (b *BMC) progress(j *job, n, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j.flash.Bytes = n
	if total > 0 && !j.finished() {
		j.percent = int(min(30*n/total, 30))
	}
}

// resolveLocked finds the firmware entry an image for target updates: by
// Id, Name or SoftwareId, or the Manager's Model for the Manager's entry.
// An iDRAC's Previous- entries (rollback images) are never targets.
func (b *BMC) resolveLocked(target string) int {
	for i, f := range b.st.firmware {
		if strings.HasPrefix(f.ID, "Previous-") && b.prof.flavor == IDRAC {
			continue
		}
		if f.ID == target || f.Name == target || (f.SoftwareID != "" && f.SoftwareID == target) {
			return i
		}
	}
	if target == b.prof.managerModel {
		return b.st.manager()
	}
	return -1
}

// resolveTargetURILocked maps a Targets URI to the firmware entry it
// names: a FirmwareInventory member, the Manager (its firmware) or the
// ComputerSystem (its BIOS).
func (b *BMC) resolveTargetURILocked(uri string) int {
	p := b.prof
	u := strings.TrimRight(uri, "/")
	if pu, err := url.Parse(u); err == nil && pu.Path != "" {
		u = strings.TrimRight(pu.Path, "/")
	}
	switch {
	case u == p.managerPath():
		return b.st.manager()
	case u == p.systemPath():
		return b.st.bios()
	case strings.HasPrefix(u, fwInvPath+"/"):
		return b.st.firmwareByID(strings.TrimPrefix(u, fwInvPath+"/"))
	}
	return -1
}

// checkTargetsLocked validates a request's Targets.
func (b *BMC) checkTargetsLocked(targets []string, param string) *reqError {
	for i, t := range targets {
		if b.resolveTargetURILocked(t) < 0 {
			return &reqError{http.StatusBadRequest, b.prof.baseMsg("PropertyValueFormatError", t, fmt.Sprintf("%s/%d", param, i))}
		}
	}
	return nil
}

// check verifies an image for j and finds the entry it updates.
func (b *BMC) check(j *job, h imageHeader, herr error) (int, *updateError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j.flash.Version = h.version
	if herr != nil {
		return -1, &updateError{failInvalid, "invalid image: " + herr.Error()}
	}
	i := b.resolveLocked(h.target)
	if i < 0 {
		return -1, &updateError{failNotApplicable, fmt.Sprintf("the image is for %q, which this BMC does not have", h.target)}
	}
	f := b.st.firmware[i]
	if !f.Updateable {
		return -1, &updateError{failNotApplicable, fmt.Sprintf("%s (%s) is not updateable", f.Name, f.ID)}
	}
	if len(j.targets) > 0 {
		ok := false
		for _, t := range j.targets {
			if b.resolveTargetURILocked(t) == i {
				ok = true
			}
		}
		if !ok {
			return -1, &updateError{failNotApplicable, fmt.Sprintf("the image is for %s, which is not among the Targets %v", f.ID, j.targets)}
		}
	}
	if f.Manager {
		j.name = "Firmware Update: " + b.managerShortName()
	} else {
		j.name = "Firmware Update: " + f.Name
	}
	return i, nil
}

func (b *BMC) managerShortName() string {
	switch b.prof.flavor {
	case ILO:
		return "iLO"
	case IDRAC:
		return "iDRAC"
	}
	return "BMC"
}

// install verifies a transferred image, then flashes it.
func (b *BMC) install(j *job, h imageHeader, herr error) {
	b.mu.Lock()
	if j.finished() { // a reset cut it off
		b.mu.Unlock()
		return
	}
	if b.prof.flavor == ILO {
		b.st.ilo.State = "Verifying"
	}
	j.percent = max(j.percent, 30)
	b.mu.Unlock()
	if !b.sleep(b.verifyTime()) {
		b.fail(j, &updateError{failClosed, "the BMC shut down during the update"})
		return
	}
	i, uerr := b.check(j, h, herr)
	if uerr != nil {
		b.fail(j, uerr)
		return
	}
	b.flash(j, i, h)
}

// flash writes a verified image for entry i, taking FlashTime, and
// applies it.
func (b *BMC) flash(j *job, i int, h imageHeader) {
	const steps = 10
	for step := 0; step < steps; step++ {
		b.mu.Lock()
		if j.finished() { // a reset cut it off
			b.mu.Unlock()
			return
		}
		j.dell = "Running"
		j.percent = 40 + 60*step/steps
		if b.prof.flavor == ILO {
			b.st.ilo.State, b.st.ilo.Percent = "Updating", 100*step/steps
		}
		if b.prof.flavor == OpenBMC && step > 0 {
			pc := fmt.Sprint(j.percent)
			j.messages = append(j.messages, message{ID: "TaskEvent.1.0.TaskProgressChanged",
				Text: fmt.Sprintf("The task with Id '%s' has changed to progress %s percent complete.", j.id, pc),
				Args: []string{j.id, pc}, Severity: "OK"})
		}
		b.mu.Unlock()
		if !b.sleep(b.opts.FlashTime / steps) {
			b.fail(j, &updateError{failClosed, "the BMC shut down during the update"})
			return
		}
	}
	b.complete(j, i, h.version)
}

// complete applies a flashed image: the entry takes the new version, and
// the BMC resets if it was its own firmware. An OpenBMC image for OnReset
// is staged instead, and activated by the next reset.
func (b *BMC) complete(j *job, i int, version string) {
	p := b.prof
	b.mu.Lock()
	defer b.mu.Unlock()
	if j.finished() {
		return
	}
	f := b.st.firmware[i]
	now := b.now()
	j.percent = 100
	j.flash.Ended = now
	j.flash.Version = version
	if b.st.busy == j {
		b.st.busy = nil
	}
	if p.flavor == OpenBMC && j.applyTime == "OnReset" {
		// bmcweb shows a staged image as a paused task.
		b.st.staged[f.ID] = version
		j.state = "Stopping"
		j.flash.Target = f.ID
		j.messages = append(j.messages,
			message{ID: "Update.1.0.AwaitToActivate", Text: fmt.Sprintf("Awaiting for an action to proceed with activating image '%s' on '%s'.", version, f.Name),
				Args: []string{version, f.Name}, Severity: "OK"},
			message{ID: "TaskEvent.1.0.TaskPaused", Text: fmt.Sprintf("The task with Id '%s' has been paused.", j.id), Args: []string{j.id}, Severity: "Warning"})
		b.st.flashes = append(b.st.flashes, j.flash)
		b.logf("bmcsim: %s: %s %s staged for the next reset", p.flavor, f.ID, version)
		return
	}
	j.flash.Target = b.applyVersionLocked(i, version)
	j.state, j.dell = "Completed", "Completed"
	switch p.flavor {
	case ILO:
		b.st.ilo = iloStatus{State: "Complete", Percent: 100, Result: p.baseMsg("Success")}
	case IDRAC:
		j.messages = append(j.messages,
			message{ID: p.oem + ".RED001", Text: "Job completed successfully.", Severity: "OK", dellID: "RED001"},
			message{ID: "Update.1.0.UpdateSuccessful", Text: fmt.Sprintf("Device '%s' successfully updated with image '%s'.", f.Name, version),
				Args: []string{f.Name, version}, Severity: "OK"})
	case OpenBMC:
		j.messages = append(j.messages, message{ID: "TaskEvent.1.0.TaskCompletedOK",
			Text: fmt.Sprintf("The task with Id '%s' has completed.", j.id), Args: []string{j.id}, Severity: "OK"})
	}
	b.st.flashes = append(b.st.flashes, j.flash)
	b.logf("bmcsim: %s: flashed %s to %s", p.flavor, j.flash.Target, version)
	if f.Manager {
		// The completed update shows for a moment before the BMC goes
		// down, as on a real one (bmcweb reboots a few seconds after
		// activating an image).
		b.startResetLocked(min(b.opts.ResetTime/4, 500*time.Millisecond))
	}
}

// applyVersionLocked gives firmware entry i the version and returns its id
// afterwards: an iDRAC names entries after their version
// ("Installed-25227-7.00.00.00") and keeps the replaced one as Previous-.
func (b *BMC) applyVersionLocked(i int, version string) string {
	f := &b.st.firmware[i]
	old := *f
	f.Version = version
	if b.prof.flavor != IDRAC || f.SoftwareID == "" || !strings.HasPrefix(f.ID, "Installed-") {
		return f.ID
	}
	f.ID = "Installed-" + f.SoftwareID + "-" + version
	prev := Firmware{ID: "Previous-" + old.SoftwareID + "-" + old.Version, Name: old.Name, Version: old.Version,
		SoftwareID: old.SoftwareID, Updateable: false}
	newID := f.ID
	fw := slices.DeleteFunc(b.st.firmware, func(g Firmware) bool {
		return strings.HasPrefix(g.ID, "Previous-"+old.SoftwareID+"-")
	})
	at := slices.IndexFunc(fw, func(g Firmware) bool { return g.ID == newID })
	if prev.ID != newID {
		fw = slices.Insert(fw, at+1, prev)
	}
	b.st.firmware = fw
	return newID
}

// fail ends j with an error, in the flavor's words.
func (b *BMC) fail(j *job, e *updateError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failLocked(j, e)
}

func (b *BMC) failLocked(j *job, e *updateError) {
	p := b.prof
	if j.finished() {
		return
	}
	j.state, j.dell = "Exception", "Failed"
	j.flash.Err = e.detail
	j.flash.Target = ""
	j.flash.Ended = b.now()
	if b.st.busy == j {
		b.st.busy = nil
	}
	what := j.flash.ImageURI
	if what == "" {
		what = "uploaded image"
	}
	var upd message
	switch e.kind {
	case failTransfer, failInterrupted, failClosed:
		upd = message{ID: "Update.1.0.TransferFailed", Text: fmt.Sprintf("Transfer of image '%s' to '%s' failed: %s.", what, b.managerShortName(), e.detail),
			Args: []string{what, b.managerShortName()}, Severity: "Critical"}
	case failInvalid:
		upd = message{ID: "Update.1.0.VerificationFailed", Text: fmt.Sprintf("Verification of image '%s' at '%s' failed: %s.", what, b.managerShortName(), e.detail),
			Args: []string{what, b.managerShortName()}, Severity: "Critical"}
	case failNotApplicable:
		upd = message{ID: "Update.1.0.ApplyFailed", Text: fmt.Sprintf("Installation of image '%s' to '%s' failed: %s.", what, b.managerShortName(), e.detail),
			Args: []string{what, b.managerShortName()}, Severity: "Critical"}
	}
	switch p.flavor {
	case ILO:
		id := map[failKind]string{
			failTransfer:      "UpdateFailed",
			failInterrupted:   "UpdateInterrupted",
			failInvalid:       "UpdateInvalidFile",
			failNotApplicable: "UpdateNotApplicable",
			failClosed:        "UpdateInterrupted",
		}[e.kind]
		b.st.ilo = iloStatus{State: "Error", Result: message{ID: p.oem + "." + id, Args: []string{e.detail}}}
	case IDRAC:
		// The Lifecycle Controller's own words come first. (The ids
		// are stand-ins in the style of Dell's RED messages.)
		dell := map[failKind]struct{ id, text string }{
			failTransfer:      {"RED003", "Unable to download the update package: "},
			failInterrupted:   {"RED003", "Unable to download the update package: "},
			failInvalid:       {"RED007", "Unable to verify the update package: "},
			failNotApplicable: {"RED014", "The update package is not applicable to this system: "},
			failClosed:        {"RED003", "The update was interrupted: "},
		}[e.kind]
		j.messages = append(j.messages,
			message{ID: p.oem + "." + dell.id, Text: dell.text + e.detail + ".", Severity: "Critical", dellID: dell.id}, upd)
	case OpenBMC:
		j.messages = append(j.messages, upd, message{ID: "TaskEvent.1.0.TaskAborted",
			Text: fmt.Sprintf("The task with Id '%s' has been aborted.", j.id), Args: []string{j.id}, Severity: "Critical"})
	}
	b.st.flashes = append(b.st.flashes, j.flash)
	b.logf("bmcsim: %s: update failed: %s", p.flavor, e.detail)
}

// startResetLocked resets the BMC after delay, unless it is closed or
// resets already. The caller holds b.mu.
func (b *BMC) startResetLocked(delay time.Duration) bool {
	if b.closed || b.phase != phaseUp || b.resetPending {
		return false
	}
	b.resetPending = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.runReset(delay)
	}()
	return true
}

// runReset is a reset: the BMC refuses connections for two thirds of
// ResetTime (or, after NeverReturn, until Close), answers 503 for the rest,
// then serves again. Every session ends; tasks are forgotten (an iDRAC
// keeps its jobs); an update in progress fails; staged images become
// active.
func (b *BMC) runReset(delay time.Duration) {
	if delay > 0 && !b.sleep(delay) {
		return
	}
	p := b.prof
	b.mu.Lock()
	b.phase = phaseDown
	b.resetPending = false
	clear(b.st.sessions)
	if j := b.st.busy; j != nil {
		b.failLocked(j, &updateError{failClosed, "the BMC reset during the update"})
	}
	switch p.flavor {
	case IDRAC:
		for _, j := range b.st.jobs {
			j.taskGone = true
		}
	case OpenBMC:
		b.st.jobs, b.st.nextJob = nil, 0
	}
	for id, v := range b.st.staged {
		if i := b.st.firmwareByID(id); i >= 0 {
			b.applyVersionLocked(i, v)
		}
	}
	clear(b.st.staged)
	never := b.neverReturn
	b.neverReturn = false
	b.applyGateLocked()
	b.mu.Unlock()
	b.logf("bmcsim: %s: resetting", p.flavor)
	if never {
		<-b.ctx.Done()
		return
	}
	down := b.opts.ResetTime * 2 / 3
	if !b.sleep(down) {
		return
	}
	b.mu.Lock()
	b.phase = phase503
	b.applyGateLocked()
	b.mu.Unlock()
	if !b.sleep(b.opts.ResetTime - down) {
		return
	}
	b.mu.Lock()
	b.phase = phaseUp
	b.applyGateLocked()
	b.mu.Unlock()
	b.logf("bmcsim: %s: back from reset", p.flavor)
}
