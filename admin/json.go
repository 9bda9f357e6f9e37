package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a programming error gets here (every answer type marshals).
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"response encoding failed"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// decodeBody reads the request body, at most MaxBodyBytes, as one JSON
// object into dst, rejecting unknown fields. Errors are 400s naming the
// field where the decoder knows it, or 413.
func (a *api) decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, a.cfg.MaxBodyBytes)
	}
	// One JSON value only: "{...} {...}" or trailing junk is a mistake.
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		if err == nil {
			return invalidArg("", "The request body must hold a single JSON object")
		}
		return decodeError(err, a.cfg.MaxBodyBytes)
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: "The request body is larger than " + metering.Plural(limit, "byte", "bytes")}
	case errors.Is(err, io.EOF):
		return invalidArg("", "The request body must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidArg("", "The request body is truncated JSON")
	case errors.As(err, &syntax):
		return invalidArg("", fmt.Sprintf("The request body is not valid JSON at byte %d (%s)", syntax.Offset,
			strings.TrimPrefix(syntax.Error(), "json: ")))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalidArg("", "The request body must be a JSON object, not a JSON "+typ.Value)
		}
		return invalidArg(typ.Field, fmt.Sprintf("must be %s, not a JSON %s", jsonKind(typ.Type.Kind().String()), typ.Value))
	}
	// DisallowUnknownFields reports `json: unknown field "x"` without a type.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(name, `"`)
		return invalidArg(field, "is not a field of this request")
	}
	return invalidArg("", "The request body is not valid JSON ("+strings.TrimPrefix(err.Error(), "json: ")+")")
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	}
	return "a different type"
}

// amount is a credits field as it arrived. It is parsed after decoding, by
// credits, so that a bad value is reported with its field's name (the JSON
// decoder does not name the field of an Unmarshaler's error). It tells an
// absent field from an explicit null.
type amount struct {
	raw []byte // nil: absent
}

func (a *amount) UnmarshalJSON(b []byte) error {
	a.raw = append([]byte(nil), b...)
	return nil
}

// given reports whether the field was present and not null.
func (a amount) given() bool { return a.raw != nil && string(a.raw) != "null" }

// credits parses the amount: a JSON number with at most six fractional
// digits, below 2^53 micro-credits in magnitude. Absent or null is zero.
func (a amount) credits(field string) (metering.Credits, error) {
	if !a.given() {
		return 0, nil
	}
	s := string(a.raw)
	if c := s[0]; c != '-' && (c < '0' || c > '9') {
		return 0, invalidArg(field, "must be a JSON number of credits (at most 6 fractional digits)")
	}
	v, err := metering.ParseCredits(s)
	switch {
	case errors.Is(err, metering.ErrCreditsRange):
		return 0, invalidArg(field, fmt.Sprintf("is out of range: it must be between -%s and %s", metering.MaxCredits, metering.MaxCredits))
	case err != nil:
		return 0, invalidArg(field, "must be a number with at most 6 fractional digits, got "+s)
	}
	return v, nil
}

// optionalCredits is credits for a nullable field: nil when absent or null.
func (a amount) optionalCredits(field string) (*metering.Credits, error) {
	if !a.given() {
		return nil, nil
	}
	v, err := a.credits(field)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// requiredCredits is credits for a field that must be given.
func (a amount) requiredCredits(field string) (metering.Credits, error) {
	if !a.given() {
		return 0, invalidArg(field, "is required")
	}
	return a.credits(field)
}

// parseTime parses an optional RFC 3339 time field.
func parseTime(field string, s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return nil, invalidArg(field, fmt.Sprintf("must be an RFC 3339 time such as 2026-01-31T23:59:59Z, got %q", *s))
	}
	return &t, nil
}

// timeJSON is a time as the API prints it: RFC 3339 in UTC.
func timeJSON(t time.Time) time.Time { return t.UTC() }

func optionalTimeJSON(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
