package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"
)

// Multipart forms (transcriptions, image edits and variations) are read
// and rebuilt: the upstream receives a canonical form written by Go's
// multipart.Writer from exactly the parts the gateway read (name,
// filename, Content-Type and bytes), so a part that one parser sees and
// another does not (a malformed header, a second Content-Disposition, a
// transfer encoding) cannot carry a different model past the estimate.
// The fields the estimate reads must appear once, spelled exactly.

// multipartFields is what the estimate reads, per endpoint.
func multipartFields(kind endpoint) []string {
	if kind == epTranscription {
		return []string{"model", "file"}
	}
	return []string{"model", "n", "prompt"}
}

func invalidMultipart(msg string) error {
	return &requestError{code: "invalid_multipart", msg: msg}
}

// readMultipart estimates a multipart body and replaces it with its
// canonical rebuild.
func (e *estimate) readMultipart(contentType string, cfg estimateConfig) error {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return invalidMultipart("The multipart form's Content-Type has no valid boundary.")
	}
	mr := multipart.NewReader(bytes.NewReader(e.body), params["boundary"])
	var out bytes.Buffer
	out.Grow(len(e.body) + 512)
	mw := multipart.NewWriter(&out)
	read := multipartFields(e.Kind)
	seen := make([]bool, len(read))
	var audio struct {
		start, end            int
		filename, contentType string
	}
	var promptBytes, images int64
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalidMultipart("The multipart form could not be read: " + err.Error() + ".")
		}
		name, filename, ctype, err := formPart(p.Header)
		if err != nil {
			return err
		}
		for i, f := range read {
			switch {
			case name == f && seen[i]:
				return &requestError{param: f, code: "ambiguous_field", msg: "The form field " + strconv.Quote(f) + " appears more than once."}
			case name == f:
				seen[i] = true
			case strings.EqualFold(name, f):
				return &requestError{param: f, code: "ambiguous_field",
					msg: "The form field " + strconv.Quote(name) + " differs from " + strconv.Quote(f) + " only in case; send it once, spelled exactly."}
			}
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", formDisposition(name, filename))
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		start := out.Len()
		if _, err := io.Copy(w, p); err != nil {
			return invalidMultipart("The multipart form could not be read: " + err.Error() + ".")
		}
		value := out.Bytes()[start:] // this part's bytes, as copied
		switch name {
		case "model":
			if err := e.setModel(string(value)); err != nil {
				return err
			}
		case "n":
			n, ok := parseCount(string(value))
			if !ok {
				return badField("n", "The n must be an integer from 1 to "+strconv.Itoa(maxChoices)+".")
			}
			e.Units.Images = n
		case "prompt":
			promptBytes = int64(len(value))
		case "image", "image[]":
			images++
		case "file":
			audio.start, audio.end, audio.filename, audio.contentType = start, out.Len(), filename, ctype
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	e.body, e.contentType = out.Bytes(), mw.FormDataContentType()
	switch e.Kind {
	case epTranscription:
		e.Units.AudioMillis, e.AudioUnknown = cfg.AudioSeconds*1000, "no file part"
		if cfg.AudioDuration == nil {
			e.AudioUnknown = "not measured"
		} else if audio.end > audio.start {
			ms, err := cfg.AudioDuration(audio.filename, audio.contentType, e.body[audio.start:audio.end])
			switch {
			case err != nil:
				e.AudioUnknown = err.Error()
			case ms >= 0:
				e.Units.AudioMillis, e.AudioUnknown = ms, ""
			}
		}
	case epImages:
		if e.Units.Images == 0 {
			e.Units.Images = 1
		}
		e.Units.InputTokens = promptBytes + images*cfg.ImageTokens
		e.Units.OutputTokens = e.Units.Images * cfg.ImageTokens
	}
	return nil
}

// formPart checks a part's headers: exactly one form-data
// Content-Disposition with a name, at most one Content-Type, no transfer
// encoding, and no control characters in what is copied.
func formPart(h textproto.MIMEHeader) (name, filename, ctype string, err error) {
	if len(h.Values("Content-Disposition")) != 1 || len(h.Values("Content-Type")) > 1 {
		return "", "", "", invalidMultipart("Each part of the form needs exactly one Content-Disposition and at most one Content-Type.")
	}
	if h.Get("Content-Transfer-Encoding") != "" {
		return "", "", "", invalidMultipart("Parts of the form must not have a Content-Transfer-Encoding.")
	}
	disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil || disp != "form-data" || params["name"] == "" {
		return "", "", "", invalidMultipart("Each part of the form needs a form-data Content-Disposition with a name.")
	}
	name, filename, ctype = params["name"], params["filename"], h.Get("Content-Type")
	if hasControl([]byte(name)) || hasControl([]byte(filename)) || hasControl([]byte(ctype)) {
		return "", "", "", invalidMultipart("A part's name, filename or Content-Type has a control character.")
	}
	return name, filename, ctype, nil
}

// formDisposition writes a Content-Disposition as multipart.Writer's
// CreateFormFile does (raw UTF-8, quotes and backslashes escaped), which
// every form parser reads.
func formDisposition(name, filename string) string {
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	d := `form-data; name="` + esc.Replace(name) + `"`
	if filename != "" {
		d += `; filename="` + esc.Replace(filename) + `"`
	}
	return d
}

// parseCount reads a form field count: digits only, 1..maxChoices.
func parseCount(s string) (int64, bool) {
	if s == "" || len(s) > 3 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 1 && n <= maxChoices
}
