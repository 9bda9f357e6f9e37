package admin

import (
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/metering"
)

// Every route declares the query parameters it reads (route.query), and
// wrap checks a request against that list before the handler runs: a
// parameter the route does not read is a 400 naming it, because a
// misspelt one silently ignored changes the answer without a word
// (POST /users/import?dryrun=true would import for real; GET
// /users?projet=x would list everyone). Every parameter of this API takes
// one value, so a repeated one is a 400 too. Handlers then read each
// parameter with q.Get.

// checkQuery refuses a query string that does not parse (r.URL.Query
// would drop the pairs it cannot read, such as "dry_run=true;x=1", without
// a word), parameters outside allowed and parameters given more than once;
// the error names the first such parameter in sorted order.
func checkQuery(raw, route string, allowed []string) error {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return invalidArg("", "The query string cannot be read ("+err.Error()+"); separate parameters with & and write % as %25")
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			return unknownParam(name, route, allowed)
		}
	}
	for _, name := range names {
		if n := len(q[name]); n > 1 {
			return invalidArg(name, "is given "+metering.Plural(int64(n), "time", "times")+"; give it once")
		}
	}
	return nil
}

func unknownParam(name, route string, allowed []string) error {
	if len(allowed) == 0 {
		return invalidArg(name, "is not a query parameter of "+route+", which takes none")
	}
	msg := "is not a query parameter of " + route + ", which takes " + metering.JoinAnd(allowed)
	if s := closest(name, allowed); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return invalidArg(name, msg)
}

// closest is the known parameter a misspelt name most likely meant: the
// same once case, '_' and '-' are ignored, or at most two edits away (and
// fewer edits than half its length, so short names do not match anything).
func closest(name string, known []string) string {
	squash := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 3
	for _, k := range known {
		if squash(k) == squash(name) {
			return k
		}
		if d := editDistance(name, k); d < bestDist && d*2 < len(k) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short ASCII names
// (bytes; a name too long to be a parameter is simply far from all).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
