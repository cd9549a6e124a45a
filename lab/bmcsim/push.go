package bmcsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// pushUpdate takes an image pushed to an iDRAC's MultipartHttpPushUri or
// to an OpenBMC's HttpPushUri (raw, application/octet-stream) or
// MultipartHttpPushUri (multipart/form-data with UpdateParameters and
// UpdateFile). Both answer 202 with a task; an OpenBMC checks the image
// before it answers and refuses a bad one with 400, an iDRAC checks it in
// the task.
func (b *BMC) pushUpdate(w http.ResponseWriter, r *http.Request) {
	p := b.prof
	mt, mparams, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	raw := err == nil && mt == "application/octet-stream"
	multi := err == nil && mt == "multipart/form-data" && mparams["boundary"] != ""
	if !multi && (p.flavor == IDRAC || !raw) {
		b.writeError(w, http.StatusBadRequest, p.baseMsg("UnsupportedMediaType"))
		return
	}
	via := "MultipartHttpPushUri"
	if raw {
		via = "HttpPushUri"
	}
	j, rerr := b.beginUpdate(via)
	if rerr != nil {
		b.writeError(w, rerr.status, rerr.msg)
		return
	}
	j.uri = r.URL.Path
	progress := throttled(func(n int64) { b.progress(j, n, r.ContentLength) })
	var (
		h    imageHeader
		herr error
	)
	if raw {
		var n int64
		var terr error
		h, herr, n, terr = readImage(r.Body, progress)
		b.progress(j, n, r.ContentLength)
		if terr != nil {
			b.fail(j, &updateError{failInterrupted, fmt.Sprintf("upload broke off after %d bytes: %v", n, terr)})
			b.writeError(w, http.StatusBadRequest, p.baseMsg("GeneralError"))
			return
		}
	} else {
		f, ferr := readForm(r.Body, mparams["boundary"], formSpec{file: "UpdateFile", progress: progress})
		if f != nil {
			b.progress(j, f.n, r.ContentLength)
		}
		if ferr != nil {
			b.fail(j, &updateError{failInterrupted, "upload broke off: " + ferr.Error()})
			b.writeError(w, http.StatusBadRequest, p.baseMsg("GeneralError"))
			return
		}
		if !f.hasFile {
			b.fail(j, &updateError{failInvalid, "no UpdateFile part"})
			b.writeError(w, http.StatusBadRequest, p.baseMsg("PropertyMissing", "UpdateFile"))
			return
		}
		h, herr = f.hdr, f.hdrErr
		targets, applyTime, rerr := p.parseUpdateParameters(f.fields["UpdateParameters"], f.hasField("UpdateParameters"))
		if rerr == nil {
			b.mu.Lock()
			rerr = b.checkTargetsLocked(targets, "Targets")
			b.mu.Unlock()
		}
		if rerr != nil {
			b.fail(j, &updateError{failInvalid, "bad UpdateParameters: " + rerr.msg.Text})
			b.writeError(w, rerr.status, rerr.msg)
			return
		}
		j.targets = targets
		j.applyTime = applyTime
		if p.flavor == IDRAC {
			j.applyTime = "Immediate" // iDRAC applies its own firmware at once
		}
	}
	if p.flavor == IDRAC {
		b.mu.Lock()
		b.publishLocked(j)
		id := j.id
		b.mu.Unlock()
		if !b.spawn(func() { b.install(j, h, herr) }) {
			b.fail(j, &updateError{failClosed, "the BMC shut down"})
		}
		w.Header().Set("Location", tasksPath+"/"+id)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	// OpenBMC: the image is checked before the answer.
	i, uerr := b.check(j, h, herr)
	if uerr != nil {
		reason := "Invalid image format"
		if uerr.kind == failNotApplicable {
			reason = "Incompatible image version"
		}
		b.fail(j, uerr)
		b.writeError(w, http.StatusBadRequest, message{ID: p.oem + ".InvalidUpload", Args: []string{r.URL.Path, reason},
			Text: fmt.Sprintf("Invalid file uploaded to %s: %s.", r.URL.Path, reason), Severity: "Warning"})
		return
	}
	b.mu.Lock()
	b.publishLocked(j)
	j.percent = 40
	o := b.taskJSON(j)
	id := j.id
	b.mu.Unlock()
	if !b.spawn(func() { b.flash(j, i, h) }) {
		b.fail(j, &updateError{failClosed, "the BMC shut down"})
	}
	w.Header().Set("Location", tasksPath+"/"+id+"/Monitor")
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, o)
}

// parseUpdateParameters parses a multipart update's UpdateParameters part
// (present tells whether there was one): its Targets and
// @Redfish.OperationApplyTime. bmcweb applies multipart updates OnReset
// unless told otherwise; an OpenBMC takes at most one target.
func (p *profile) parseUpdateParameters(data string, present bool) ([]string, string, *reqError) {
	applyTime := "Immediate"
	if p.flavor == OpenBMC {
		applyTime = "OnReset"
	}
	if !present {
		return nil, applyTime, nil
	}
	bad := func(m message) ([]string, string, *reqError) { return nil, "", &reqError{http.StatusBadRequest, m} }
	m, err := parseJSONObject([]byte(data))
	if err != nil {
		return bad(p.baseMsg("MalformedJSON"))
	}
	var targets []string
	if raw, ok := m["Targets"]; ok {
		if err := json.Unmarshal(raw, &targets); err != nil {
			return bad(p.baseMsg("PropertyValueFormatError", string(raw), "Targets"))
		}
	}
	if p.flavor == OpenBMC && len(targets) > 1 {
		return bad(p.baseMsg("PropertyValueFormatError", strings.Join(targets, ","), "Targets"))
	}
	at, ok, err := stringField(m, "@Redfish.OperationApplyTime")
	if err != nil || (ok && at != "Immediate" && at != "OnReset") {
		return bad(p.baseMsg("PropertyValueNotInList", string(m["@Redfish.OperationApplyTime"]), "@Redfish.OperationApplyTime"))
	}
	if ok {
		applyTime = at
	}
	return targets, applyTime, nil
}

// iloUpload takes an image pushed to iLO's HttpPushUri, /cgi-bin/uploadFile:
// multipart/form-data with the parts sessionKey (the session token, unless
// the request carries it as X-Auth-Token or in a sessionKey cookie),
// parameters ({"UpdateRepository": true, "UpdateTarget": true, …}) and file.
// With UpdateTarget the iLO flashes the file and answers 200 once it has
// checked it (400 if it is not a valid image for this machine); progress
// shows in UpdateService's Oem.Hpe.State. Without UpdateTarget the file only
// goes to the iLO Repository, which this simulator does not keep: it answers
// 200 and flashes nothing.
func (b *BMC) iloUpload(w http.ResponseWriter, r *http.Request) {
	p := b.prof
	badParam := message{ID: p.oem + ".UpdateBadParameter", Text: "The update failed because a bad parameter was supplied.", Severity: "Critical"}
	mt, mparams, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || mparams["boundary"] == "" {
		b.writeError(w, http.StatusBadRequest, badParam)
		return
	}
	_, authed := b.authorized(r)
	var (
		j    *job
		rerr *reqError
	)
	errNoAuth := errors.New("no valid session")
	errBusy := errors.New("busy")
	spec := formSpec{
		file: "file",
		beforeFile: func(f *form) error {
			if !authed {
				if key := f.fields["sessionKey"]; key != "" {
					_, authed = b.sessionByToken(key)
				}
			}
			if !authed {
				return errNoAuth
			}
			j, rerr = b.beginUpdate("HttpPushUri")
			if rerr != nil {
				return errBusy
			}
			return nil
		},
		progress: throttled(func(n int64) {
			if j != nil {
				b.progress(j, n, r.ContentLength)
			}
		}),
	}
	f, ferr := readForm(r.Body, mparams["boundary"], spec)
	switch {
	case errors.Is(ferr, errNoAuth):
		b.writeError(w, http.StatusUnauthorized, p.baseMsg("NoValidSession"))
		return
	case errors.Is(ferr, errBusy):
		b.writeError(w, rerr.status, rerr.msg)
		return
	case ferr != nil && j != nil:
		b.fail(j, &updateError{failInterrupted, "upload broke off: " + ferr.Error()})
		b.writeError(w, http.StatusBadRequest, badParam)
		return
	case ferr != nil || !f.hasFile:
		b.writeError(w, http.StatusBadRequest, badParam)
		return
	}
	b.progress(j, f.n, r.ContentLength)
	var params struct{ UpdateRepository, UpdateTarget bool }
	if err := json.Unmarshal([]byte(f.fields["parameters"]), &params); err != nil {
		b.fail(j, &updateError{failInvalid, "bad parameters part"})
		b.writeError(w, http.StatusBadRequest, badParam)
		return
	}
	if !params.UpdateTarget {
		b.mu.Lock()
		if b.st.busy == j {
			b.st.busy = nil
		}
		b.st.ilo = iloStatus{State: "Complete", Result: p.baseMsg("Success")}
		b.mu.Unlock()
		writeJSON(w, http.StatusOK, p.errorBody(p.baseMsg("Success")))
		return
	}
	b.mu.Lock()
	b.st.ilo.State = "Verifying"
	b.mu.Unlock()
	i, uerr := b.check(j, f.hdr, f.hdrErr)
	if uerr != nil {
		b.fail(j, uerr)
		b.mu.Lock()
		res := b.st.ilo.Result
		b.mu.Unlock()
		b.writeError(w, http.StatusBadRequest, res)
		return
	}
	if !b.spawn(func() { b.flash(j, i, f.hdr) }) {
		b.fail(j, &updateError{failClosed, "the BMC shut down"})
	}
	writeJSON(w, http.StatusOK, p.errorBody(p.baseMsg("Success")))
}
