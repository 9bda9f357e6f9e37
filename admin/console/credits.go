package console

import (
	"encoding/json"
	"strconv"
	"strings"
)

// microPerCredit: credits have at most 6 fractional digits.
const microPerCredit = 1_000_000

// parseMicro reads an exact decimal as the API writes it ("12.5",
// "-3", "0.000001") into micro-credits, without floats.
func parseMicro(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 6 {
		return 0, false
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (1<<62)/microPerCredit {
		return 0, false
	}
	f := int64(0)
	if frac != "" {
		frac += strings.Repeat("0", 6-len(frac))
		if f, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return 0, false
		}
	}
	v := w*microPerCredit + f
	if neg {
		v = -v
	}
	return v, true
}

// formatMicro writes micro-credits as the API would: "12.5", "-3".
func formatMicro(v int64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := strconv.FormatInt(v/microPerCredit, 10)
	if f := v % microPerCredit; f != 0 {
		s += "." + strings.TrimRight(strconv.FormatInt(f+microPerCredit, 10)[1:], "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

// formCredits turns what an admin typed into a credits field into the
// JSON number the API expects. Spaces go; a German decimal comma
// ("12,5") becomes a point when it is the only separator. Anything the
// API would not take is passed on as it is, so that the API's own
// message names the problem. ok is false for an empty field.
func formCredits(typed string) (json.RawMessage, bool) {
	s := strings.ReplaceAll(strings.TrimSpace(typed), " ", "")
	if s == "" {
		return nil, false
	}
	if strings.Count(s, ",") == 1 && !strings.Contains(s, ".") {
		s = strings.Replace(s, ",", ".", 1)
	}
	if json.Valid([]byte(s)) {
		var n json.Number
		if json.Unmarshal([]byte(s), &n) == nil {
			return json.RawMessage(s), true
		}
	}
	// Not a JSON number: send it as a string, which the API refuses with a
	// sentence naming the field.
	q, _ := json.Marshal(s)
	return q, true
}

// pathSegment escapes a value for one segment of a URL path.
func pathSegment(s string) string {
	return strings.ReplaceAll(urlPathEscape(s), "/", "%2F")
}
