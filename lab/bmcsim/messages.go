package bmcsim

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
)

// baseTexts are the DMTF Base registry messages a BMC uses, with %1, %2
// for their arguments.
var baseTexts = map[string]struct{ text, severity string }{
	"Success":                         {"The request completed successfully.", "OK"},
	"Created":                         {"The resource has been created successfully.", "OK"},
	"GeneralError":                    {"A general error has occurred. See Resolution for information on how to resolve the error.", "Critical"},
	"InternalError":                   {"The request failed due to an internal service error.  The service is still operational.", "Critical"},
	"NoValidSession":                  {"There is no valid session established with the implementation.", "Critical"},
	"ResourceNotFound":                {"The requested resource of type %1 named '%2' was not found.", "Critical"},
	"ResourceMissingAtURI":            {"The resource at the URI '%1' was not found.", "Critical"},
	"ActionNotSupported":              {"The action %1 is not supported by the resource.", "Critical"},
	"ActionParameterMissing":          {"The action %1 requires the parameter %2 to be present in the request body.", "Critical"},
	"ActionParameterNotSupported":     {"The parameter %1 for the action %2 is not supported on the target resource.", "Warning"},
	"ActionParameterValueTypeError":   {"The value '%1' for the parameter %2 in the action %3 is of a different type than the parameter can accept.", "Warning"},
	"ActionParameterValueFormatError": {"The value '%1' for the parameter %2 in the action %3 is of a different format than the parameter can accept.", "Warning"},
	"PropertyMissing":                 {"The property %1 is a required property and must be included in the request.", "Warning"},
	"PropertyValueFormatError":        {"The value '%1' for the property %2 is of a different format than the property can accept.", "Warning"},
	"PropertyValueNotInList":          {"The value '%1' for the property %2 is not in the list of acceptable values.", "Warning"},
	"MalformedJSON":                   {"The request body submitted was malformed JSON and could not be parsed by the receiving service.", "Critical"},
	"ServiceTemporarilyUnavailable":   {"The service is temporarily unavailable.  Retry in %1 seconds.", "Critical"},
	"ServiceInUnknownState":           {"The operation failed because the service is in an unknown state and can no longer take incoming requests.", "Critical"},
	"UnsupportedMediaType":            {"The request specifies a Content-Type for the body that is not supported.", "Critical"},
	"OperationNotAllowed":             {"The HTTP method is not allowed on this resource.", "Critical"},
}

// fill puts args into a text's %1, %2, ….
func fill(text string, args []string) string {
	for i := len(args); i >= 1; i-- {
		text = strings.ReplaceAll(text, "%"+strconv.Itoa(i), args[i-1])
	}
	return text
}

// baseMsg is a Base registry message in the BMC's registry version.
func (p *profile) baseMsg(key string, args ...string) message {
	t := baseTexts[key]
	return message{ID: p.base + "." + key, Text: fill(t.text, args), Args: args, Severity: t.severity}
}

// json renders m as a Redfish Message.
func (m message) json() obj {
	args := m.Args
	if args == nil {
		args = []string{}
	}
	o := obj{"MessageId": m.ID, "MessageArgs": args}
	if m.Text != "" {
		o["Message"] = m.Text
	}
	if m.Severity != "" {
		o["MessageSeverity"] = m.Severity
		o["Severity"] = m.Severity
	}
	return o
}

func messagesJSON(ms []message) []obj {
	out := make([]obj, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.json())
	}
	return out
}

// errorBody is a Redfish error response holding msgs, shaped as the flavor
// shapes them.
func (p *profile) errorBody(msgs ...message) obj {
	info := messagesJSON(msgs)
	var e obj
	switch p.flavor {
	case ILO:
		// iLO 5 wraps every message, successes included, in an
		// "error" object whose code points at the extended info, and
		// its extended info carries ids and arguments only.
		short := make([]obj, 0, len(msgs))
		for _, m := range msgs {
			o := obj{"MessageId": m.ID}
			if len(m.Args) > 0 {
				o["MessageArgs"] = m.Args
			}
			short = append(short, o)
		}
		e = obj{"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
			"@Message.ExtendedInfo": short}
	case IDRAC:
		e = obj{"code": p.base + ".GeneralError",
			"message":               "A general error has occurred. See ExtendedInfo for more information",
			"@Message.ExtendedInfo": info}
	default:
		// bmcweb names the first message in code and message.
		e = obj{"@Message.ExtendedInfo": info}
		if len(msgs) > 0 {
			e["code"] = msgs[0].ID
			e["message"] = msgs[0].Text
		}
	}
	return obj{"error": e}
}

// obj is a JSON object.
type obj = map[string]any

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("ETag", etagOf(b))
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("OData-Version", "4.0")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError sends a Redfish error with status.
func (b *BMC) writeError(w http.ResponseWriter, status int, msgs ...message) {
	writeJSON(w, status, b.prof.errorBody(msgs...))
}

// etagOf is the weak entity tag of a rendered resource.
func etagOf(body []byte) string { return fmt.Sprintf("W/\"%08X\"", crc32.ChecksumIEEE(body)) }

// etagOfObj is the entity tag writeJSON sends with o.
func etagOfObj(o obj) string {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return `W/"0"`
	}
	return etagOf(b)
}
