package metering

import (
	"fmt"
	"unicode/utf8"
)

// Every text that enters an event (request label, model, note, actor,
// names) ends up in a Postgres text column, a CSV cell and a JSON report.
// Postgres refuses invalid UTF-8 and NUL in text, and refuses a whole COPY
// batch for one such value, so texts are made safe in Go before they reach
// Redis (CleanText for what clients send, CheckText for what admins type,
// answered with a 400), and once more where events are written
// (store_events.go).

// Bounds on the texts events carry, in bytes.
const (
	MaxRequestLabel = 512  // "POST /v1/chat/completions"
	MaxModelName    = 256  // a client-chosen model name
	MaxNoteLength   = 1000 // an admin's note
	MaxActorLength  = 200  // an admin token's name
)

// CleanText returns s as valid UTF-8 of at most max bytes with no control
// characters: each invalid byte and each control character (C0, DEL, C1)
// becomes U+FFFD, and the text is cut at a character boundary. It is for
// texts a client chooses (request paths, model names), which are recorded
// rather than refused.
func CleanText(s string, max int) string {
	if cleanAlready(s, max) {
		return s
	}
	out := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || isControl(r) {
			r = utf8.RuneError
		}
		if len(out)+utf8.RuneLen(r) > max {
			break
		}
		out = utf8.AppendRune(out, r)
		i += size
	}
	return string(out)
}

// cleanAlready is CleanText's fast path: true when s needs no change.
func cleanAlready(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return asciiFree(s[i:])
		}
	}
	return true
}

// asciiFree checks the rest of a text that left the printable ASCII range.
func asciiFree(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || isControl(r) {
			return false
		}
	}
	return true
}

// CheckText validates a text an admin typed (a note): valid UTF-8, at most
// max bytes, no control characters other than tab and line breaks. The
// error names field, for a 400 answer.
func CheckText(field, s string, max int) error {
	if len(s) > max {
		return invalid(field, fmt.Sprintf("must be at most %d bytes", max))
	}
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if isControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return invalid(field, fmt.Sprintf("must not contain the control character %U", r))
		}
	}
	return nil
}

// isControl is true for C0 controls (NUL included), DEL and C1 controls.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
