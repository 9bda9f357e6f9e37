package metering

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// predicates are the words a message that completes its field's name
// starts with: "must be positive" about limit reads "limit must be
// positive." (InvalidError messages are mostly written so.)
var predicates = []string{"must ", "is ", "are ", "may ", "would ", "has ", "cannot ", "does ", "takes "}

// Sentence makes a message for an admin read as a sentence on its own: a
// predicate gets its field's name in front, any other message an upper
// case first letter, and every one a full stop at the end (unless it ends
// in a question mark). Field names may come from requests (query
// parameter names), so the copy in the message is made safe and short.
// The admin API answers every error with it, and import rows use it.
func Sentence(field, msg string) string {
	msg = strings.TrimSpace(msg)
	predicate := false
	for _, p := range predicates {
		predicate = predicate || strings.HasPrefix(msg, p)
	}
	if predicate && field != "" {
		msg = CleanText(field, 64) + " " + msg
	} else if r, size := utf8.DecodeRuneInString(msg); unicode.IsLower(r) {
		msg = string(unicode.ToUpper(r)) + msg[size:]
	}
	if !strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, "?") {
		msg += "."
	}
	return msg
}

// Sentence is the error's message as a sentence naming its field.
func (e *InvalidError) Sentence() string { return Sentence(e.Field, e.Message) }
