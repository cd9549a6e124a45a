package bmcsim

import (
	"net/http"
)

// finished reports whether a task has ended for good (a staged OpenBMC
// update stays "Stopping" until the reset that activates it).
func (j *job) finished() bool { return j.state == "Completed" || j.state == "Exception" }

// taskStatus is the DMTF TaskStatus of j.
func (j *job) taskStatus() string {
	switch j.state {
	case "Exception":
		return "Critical"
	}
	return "OK"
}

// taskJSON renders j as a Task. The caller holds b.mu.
func (b *BMC) taskJSON(j *job) obj {
	p := b.prof
	o := obj{
		"@odata.id":       p.id(tasksPath + "/" + j.id),
		"@odata.type":     "#Task.v1_4_3.Task",
		"Id":              j.id,
		"Name":            "Task " + j.id,
		"TaskState":       j.state,
		"TaskStatus":      j.taskStatus(),
		"PercentComplete": j.percent,
		"StartTime":       redfishTime(j.flash.Started),
		"Messages":        messagesJSON(j.messages),
	}
	if j.finished() {
		o["EndTime"] = redfishTime(j.flash.Ended)
	}
	switch p.flavor {
	case IDRAC:
		o["@odata.type"] = "#Task.v1_5_1.Task"
		o["Name"] = "Task"
		o["Description"] = "Server Configuration and other Tasks running on iDRAC are listed here"
		o["Oem"] = obj{"Dell": b.dellJobFields(j)}
	case OpenBMC:
		if !j.monitorGone {
			o["TaskMonitor"] = tasksPath + "/" + j.id + "/Monitor"
		}
		o["HidePayload"] = false
		o["Payload"] = obj{"TargetUri": j.uri, "HttpOperation": "POST", "HttpHeaders": []string{}, "JsonBody": j.body}
	}
	return o
}

// task serves a task: on an iDRAC 202 while it runs and 200 once done (the
// task URI is its task monitor), on OpenBMC always 200.
func (b *BMC) task(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b.mu.Lock()
	j := b.st.jobByID(id)
	if j == nil || j.taskGone {
		b.mu.Unlock()
		b.writeError(w, http.StatusNotFound, b.prof.baseMsg("ResourceNotFound", "Task", id))
		return
	}
	o := b.taskJSON(j)
	status := http.StatusOK
	if b.prof.flavor == IDRAC && !j.finished() {
		status = http.StatusAccepted
		w.Header().Set("Location", tasksPath+"/"+j.id)
	}
	b.mu.Unlock()
	writeJSON(w, status, o)
}

// taskMonitor is bmcweb's task monitor: 202 and the task while it runs,
// 204 once when it has ended, then 404.
func (b *BMC) taskMonitor(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b.mu.Lock()
	j := b.st.jobByID(id)
	if j == nil || j.taskGone || j.monitorGone {
		b.mu.Unlock()
		b.writeError(w, http.StatusNotFound, b.prof.baseMsg("ResourceNotFound", "Task", id))
		return
	}
	if j.finished() {
		j.monitorGone = true
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	o := b.taskJSON(j)
	b.mu.Unlock()
	w.Header().Set("Location", tasksPath+"/"+id+"/Monitor")
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, o)
}

// dellJobFields are the DellJob properties of j. The caller holds b.mu.
func (b *BMC) dellJobFields(j *job) obj {
	msg, id := j.dellMessage()
	o := obj{
		"@odata.type":       "#DellJob.v1_4_0.DellJob",
		"Id":                j.id,
		"Name":              j.name,
		"Description":       "Job Instance",
		"JobState":          j.dell,
		"JobType":           "FirmwareUpdate",
		"Message":           msg,
		"MessageId":         id,
		"MessageArgs":       []string{},
		"PercentComplete":   j.percent,
		"StartTime":         "TIME_NOW",
		"EndTime":           "TIME_NA",
		"CompletionTime":    nil,
		"TargetSettingsURI": nil,
	}
	if j.finished() {
		o["CompletionTime"] = redfishTime(j.flash.Ended)
	}
	return o
}

// dellMessage is the iDRAC job's Message and MessageId now.
func (j *job) dellMessage() (string, string) {
	for i := len(j.messages) - 1; i >= 0; i-- {
		if m := j.messages[i]; m.dellID != "" {
			return m.Text, m.dellID
		}
	}
	switch j.dell {
	case "Downloading":
		return "Downloading the image.", "RED016"
	case "Running":
		return "Job in progress.", "PR19"
	}
	return "Task successfully scheduled.", "JCP001"
}

// dellJob renders a job of an iDRAC's job queue (which survives resets).
func (b *BMC) dellJob(base, id string) (obj, bool) {
	j := b.st.jobByID(id)
	if j == nil {
		return nil, false
	}
	o := b.dellJobFields(j)
	o["@odata.id"] = base + "/" + id
	o["@odata.context"] = "/redfish/v1/$metadata#DellJob.DellJob"
	return o, true
}
