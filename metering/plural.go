package metering

import "strconv"

// Plural writes a count with its noun in the right number: "1 request",
// "2 requests", "0 requests". Messages for admins use it, so none says
// "1 requests".
func Plural(n int64, one, many string) string {
	if n == 1 || n == -1 {
		return strconv.FormatInt(n, 10) + " " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

// RowsInvalid says how many of a file's rows are invalid, in agreement:
// "1 of 3 rows is invalid", "2 of 3 rows are invalid".
func RowsInvalid(bad, total int) string {
	verb := "are"
	if bad == 1 {
		verb = "is"
	}
	return strconv.Itoa(bad) + " of " + Plural(int64(total), "row", "rows") + " " + verb + " invalid"
}
