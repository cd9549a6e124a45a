package redfish

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The parsers here read what a BMC sends about its service, its update
// capabilities and a running update. They are tolerant: a field missing or
// of the wrong type is absent, never an error and never a panic; only a
// body that is not a JSON object, or a link to another host, fails.

// Bounds on what is kept from a BMC's documents.
const (
	maxMessages   = 32  // messages kept per document, and per update
	maxMessageLen = 300 // runes of one message
	maxMembers    = 1024
	maxProtocols  = 32
)

// obj is a JSON object whose members are decoded on demand.
type obj map[string]json.RawMessage

// parseObj decodes b as a JSON object.
func parseObj(b []byte) (obj, error) {
	var o obj
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, errors.New("not a JSON object")
	}
	return o, nil
}

// asObj is raw as an object, nil when it is not one.
func asObj(raw json.RawMessage) obj {
	var o obj
	if json.Unmarshal(raw, &o) != nil {
		return nil
	}
	return o
}

func (o obj) str(key string) string {
	var s string
	if json.Unmarshal(o[key], &s) != nil {
		return ""
	}
	return s
}

func (o obj) obj(key string) obj {
	if o == nil || o[key] == nil {
		return nil
	}
	return asObj(o[key])
}

func (o obj) arr(key string) []json.RawMessage {
	var a []json.RawMessage
	if json.Unmarshal(o[key], &a) != nil {
		return nil
	}
	return a
}

// num is a number, or a string holding one.
func (o obj) num(key string) (float64, bool) {
	raw := o[key]
	if raw == nil {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return f, true
	}
	if s := o.str(key); s != "" {
		if f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64); err == nil {
			return f, true
		}
	}
	return 0, false
}

// percent is a percentage in 0..100, or -1.
func (o obj) percent(keys ...string) int {
	for _, k := range keys {
		if f, ok := o.num(k); ok && f >= 0 && f <= 100 {
			return int(f)
		}
	}
	return -1
}

// link is the @odata.id of the member key.
func (o obj) link(key string) string { return o.obj(key).str("@odata.id") }

// odataID is the @odata.id of the document b, or "".
func odataID(b []byte) string {
	o, err := parseObj(b)
	if err != nil {
		return ""
	}
	return o.str("@odata.id")
}

// clean makes a string from the BMC safe to print: valid UTF-8, no control
// characters (a terminal escape in a log is an attack), spaces collapsed,
// at most maxMessageLen runes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	var b strings.Builder
	n, space := 0, false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = b.Len() > 0
			continue
		}
		if n >= maxMessageLen {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// message is one of the BMC's messages.
type message struct{ id, text string }

func (m message) String() string { return formatMessage(m.text, m.id) }

// key identifies a message among others: its text, else its id. (iDRAC
// repeats a job's message in Oem.Dell with a shorter MessageId.)
func (m message) key() string {
	if t := clean(m.text); t != "" {
		return strings.TrimSuffix(t, ".")
	}
	return clean(m.id)
}

// distinct is ms as strings, each message once.
func distinct(ms []message) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range ms {
		if k := m.key(); !seen[k] {
			seen[k] = true
			out = append(out, m.String())
		}
	}
	return out
}

// formatMessage is "text (MessageId)", or whichever of the two there is.
func formatMessage(text, id string) string {
	text, id = clean(text), clean(id)
	switch {
	case text != "" && id != "":
		return text + " (" + id + ")"
	case text != "":
		return text
	}
	return id
}

// parseMessages reads an array of Redfish Message objects.
func parseMessages(a []json.RawMessage) []message {
	var ms []message
	for _, raw := range a {
		if len(ms) >= maxMessages {
			break
		}
		o := asObj(raw)
		m := message{id: o.str("MessageId"), text: o.str("Message")}
		if m.String() != "" {
			ms = append(ms, m)
		}
	}
	return ms
}

// errorMessages are the messages of a Redfish error body: error.message
// and the @Message.ExtendedInfo of the error or of the document.
func errorMessages(b []byte) []string {
	o, err := parseObj(b)
	if err != nil {
		if s := clean(string(b[:min(len(b), 512)])); s != "" && utf8.Valid(b[:min(len(b), 512)]) && !strings.HasPrefix(s, "<") {
			return []string{s}
		}
		return nil
	}
	var out []string
	e := o.obj("error")
	if s := formatMessage(e.str("message"), e.str("code")); s != "" {
		out = append(out, s)
	}
	for _, m := range parseMessages(append(e.arr("@Message.ExtendedInfo"), o.arr("@Message.ExtendedInfo")...)) {
		if s := m.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out[:min(len(out), maxMessages)]
}

// root is what the client keeps of the service root.
type root struct {
	version string // RedfishVersion
	vendor  string // Vendor, or the name of the Oem section
	// The links, as paths on the endpoint ("" when the root has none).
	sessions, managers, systems, updateService string
	// assumed is a root taken on trust (it demanded a session): the
	// standard links, to be read again after login.
	assumed bool
}

func defaultRoot() root {
	return root{
		sessions:      defaultSessions,
		managers:      "/redfish/v1/Managers",
		systems:       "/redfish/v1/Systems",
		updateService: "/redfish/v1/UpdateService",
		assumed:       true,
	}
}

// parseRoot reads a service root. It fails when b is not a Redfish service
// root (a JSON object with RedfishVersion, or an @odata.id or @odata.type
// naming the service root), or when a link points off the endpoint.
func parseRoot(b []byte, resolve func(string) (string, error)) (root, error) {
	o, err := parseObj(b)
	if err != nil {
		return root{}, fmt.Errorf("not JSON: %v", err)
	}
	r := root{version: clean(o.str("RedfishVersion")), vendor: clean(o.str("Vendor"))}
	id, typ := o.str("@odata.id"), o.str("@odata.type")
	if r.version == "" && !strings.HasPrefix(strings.TrimRight(id, "/"), "/redfish/v1") && !strings.Contains(typ, "ServiceRoot") {
		return root{}, errors.New("no RedfishVersion, @odata.id or @odata.type of a service root")
	}
	if r.vendor == "" {
		if oem := o.obj("Oem"); len(oem) > 0 {
			names := make([]string, 0, len(oem))
			for k := range oem {
				names = append(names, k)
			}
			slices.Sort(names)
			r.vendor = clean(names[0])
		}
	}
	links := []struct {
		dst *string
		ref string
	}{
		{&r.sessions, o.obj("Links").link("Sessions")},
		{&r.managers, o.link("Managers")},
		{&r.systems, o.link("Systems")},
		{&r.updateService, o.link("UpdateService")},
	}
	for _, l := range links {
		if l.ref == "" {
			continue
		}
		p, err := resolve(l.ref)
		if err != nil {
			return root{}, err
		}
		*l.dst = p
	}
	if r.sessions == "" {
		r.sessions = defaultSessions
	}
	return r, nil
}

// collection is a page of a resource collection.
type collection struct {
	members []string // the members' @odata.id, in order
	next    string   // Members@odata.nextLink
}

// parseCollection reads a resource collection page.
func parseCollection(b []byte, resolve func(string) (string, error)) (collection, error) {
	o, err := parseObj(b)
	if err != nil {
		return collection{}, err
	}
	var c collection
	for _, raw := range o.arr("Members") {
		if len(c.members) >= maxMembers {
			return collection{}, fmt.Errorf("more than %d members", maxMembers)
		}
		ref := asObj(raw).str("@odata.id")
		if ref == "" {
			continue
		}
		p, err := resolve(ref)
		if err != nil {
			return collection{}, err
		}
		c.members = append(c.members, p)
	}
	if n := o.str("Members@odata.nextLink"); n != "" {
		p, err := resolve(n)
		if err != nil {
			return collection{}, err
		}
		c.next = p
	}
	return c, nil
}

// updateService is what the client reads of an UpdateService.
type updateService struct {
	caps              Capabilities
	simpleUpdate      string // the SimpleUpdate action's target
	actionInfo        string // its @Redfish.ActionInfo
	firmwareInventory string
	hpe               hpeState
}

// parseUpdateService reads an UpdateService.
func parseUpdateService(b []byte, resolve func(string) (string, error)) (updateService, error) {
	o, err := parseObj(b)
	if err != nil {
		return updateService{}, err
	}
	var us updateService
	ref := func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		return resolve(s)
	}
	su := o.obj("Actions").obj("#UpdateService.SimpleUpdate")
	if us.simpleUpdate, err = ref(su.str("target")); err != nil {
		return updateService{}, err
	}
	if us.actionInfo, err = ref(su.str("@Redfish.ActionInfo")); err != nil {
		return updateService{}, err
	}
	if us.firmwareInventory, err = ref(o.link("FirmwareInventory")); err != nil {
		return updateService{}, err
	}
	if us.caps.MultipartHTTPPushURI, err = ref(o.str("MultipartHttpPushUri")); err != nil {
		return updateService{}, err
	}
	if us.caps.HTTPPushURI, err = ref(o.str("HttpPushUri")); err != nil {
		return updateService{}, err
	}
	us.caps.SimpleUpdate = us.simpleUpdate != ""
	us.caps.TransferProtocols = protocols(su.arr("TransferProtocol@Redfish.AllowableValues"))
	us.hpe = hpeOf(o)
	us.caps.HPE = us.hpe.present
	return us, nil
}

// protocols reads an AllowableValues array of transfer protocols: upper
// case, each once, bounded.
func protocols(a []json.RawMessage) []string {
	var out []string
	for _, raw := range a {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			continue
		}
		s = strings.ToUpper(clean(s))
		if s == "" || len(s) > 32 || slices.Contains(out, s) {
			continue
		}
		if len(out) >= maxProtocols {
			break
		}
		out = append(out, s)
	}
	return out
}

// actionInfoProtocols reads the TransferProtocol parameter's allowable
// values from a SimpleUpdate ActionInfo.
func actionInfoProtocols(b []byte) []string {
	o, err := parseObj(b)
	if err != nil {
		return nil
	}
	for _, raw := range o.arr("Parameters") {
		p := asObj(raw)
		if p.str("Name") == "TransferProtocol" {
			return protocols(p.arr("AllowableValues"))
		}
	}
	return nil
}

// hpeState is HPE's update state machine, Oem.Hpe of the UpdateService.
type hpeState struct {
	present bool // the UpdateService has Oem.Hpe
	state   string
	percent int
	result  message // Oem.Hpe.Result
}

// hpeOf reads Oem.Hpe of an UpdateService.
func hpeOf(o obj) hpeState {
	h := o.obj("Oem").obj("Hpe")
	if h == nil {
		return hpeState{percent: -1}
	}
	s := hpeState{present: true, state: clean(h.str("State")), percent: h.percent("FlashProgressPercent", "ProgressPercent")}
	res := h.obj("Result")
	var args []string
	for i, raw := range res.arr("MessageArgs") {
		var a string
		if i < 8 && json.Unmarshal(raw, &a) == nil {
			args = append(args, a)
		}
	}
	s.result = message{id: res.str("MessageId"), text: res.str("Message")}
	if s.result.text == "" && len(args) > 0 {
		s.result.text = strings.Join(args, ", ")
	}
	return s
}

// parseHPE reads the HPE state of an UpdateService body.
func parseHPE(b []byte) (hpeState, error) {
	o, err := parseObj(b)
	if err != nil {
		return hpeState{}, err
	}
	return hpeOf(o), nil
}

// outcome is what a task document says of the update.
type outcome int

const (
	running   outcome = iota
	succeeded         // the BMC says it completed
	failed            // the BMC says it failed
	stateless         // the document has no state (a task monitor's final answer)
)

// task is what the client reads of a DMTF Task or a Dell Job.
type task struct {
	id      string // @odata.id
	state   string // TaskState, else JobState
	status  string // TaskStatus
	job     string // JobState (top level or Oem.Dell)
	percent int
	msgs    []message
}

// parseTask reads a task or job document.
func parseTask(b []byte) (task, error) {
	o, err := parseObj(b)
	if err != nil {
		return task{percent: -1}, err
	}
	dell := o.obj("Oem").obj("Dell")
	t := task{
		id:      o.str("@odata.id"),
		state:   clean(o.str("TaskState")),
		status:  clean(o.str("TaskStatus")),
		job:     clean(o.str("JobState")),
		percent: o.percent("PercentComplete"),
		msgs:    parseMessages(o.arr("Messages")),
	}
	if t.job == "" {
		t.job = clean(dell.str("JobState"))
	}
	if t.percent < 0 {
		t.percent = dell.percent("PercentComplete")
	}
	for _, src := range []obj{o, dell} {
		if m := (message{id: src.str("MessageId"), text: src.str("Message")}); m.String() != "" && len(t.msgs) < maxMessages {
			t.msgs = append(t.msgs, m)
		}
	}
	if t.state == "" {
		t.state = t.job
	}
	return t, nil
}

// outcome classifies the task by DMTF's TaskState and Dell's JobState.
func (t task) outcome() outcome {
	jobFailed := false
	switch strings.ToLower(t.job) {
	case "failed", "completedwitherrors", "rebootfailed":
		jobFailed = true
	}
	switch strings.ToLower(t.state) {
	case "completed":
		if jobFailed || strings.EqualFold(t.status, "Critical") {
			return failed
		}
		return succeeded
	case "exception", "killed", "cancelled", "failed", "completedwitherrors", "rebootfailed":
		return failed
	case "":
		return stateless
	}
	return running
}
