package caddymodule_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// promqlMetricNames returns the metric names a PromQL expression reads,
// sorted and without repeats. It is a scanner, not a full parser: it
// skips string literals, label matchers ({…}), ranges and subqueries
// ([…]), numbers and durations, Grafana variables ($__rate_interval,
// ${ds}), the label lists of by/without/on/ignoring/group_left/group_right,
// keywords, aggregation operators and function names (an identifier
// followed by "("). What is left are metric names. An unbalanced bracket
// or quote is an error, so a mangled query does not pass as naming nothing,
// and so is a selector by __name__, which it cannot read.
func promqlMetricNames(expr string) ([]string, error) {
	if strings.Contains(expr, "__name__") {
		return nil, errors.New("a selector by __name__: name the metric instead")
	}
	seen := map[string]bool{}
	s := []rune(expr)
	i, depth := 0, 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '(' || c == ')':
			// Calls and grouping: only their balance matters here.
			if c == '(' {
				depth++
			} else if depth--; depth < 0 {
				return nil, fmt.Errorf("unbalanced ')' at %d", i)
			}
			i++
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{' || c == '[':
			end, err := skipGroup(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			// A Grafana variable: $name or ${name}.
			i++
			if i < len(s) && s[i] == '{' {
				end, err := skipGroup(s, i)
				if err != nil {
					return nil, err
				}
				i = end
			} else {
				for i < len(s) && isIdentRune(s[i], false) {
					i++
				}
			}
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
			// A number (1e6, 0.25, 0x1f) or a duration (5m, 1h30m).
			for i < len(s) && (isIdentRune(s[i], false) || s[i] == '.' ||
				(s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E') && isDigit(s[i-2])) {
				i++
			}
		case isIdentRune(c, true):
			start := i
			for i < len(s) && isIdentRune(s[i], false) {
				i++
			}
			word := string(s[start:i])
			next := i
			for next < len(s) && (s[next] == ' ' || s[next] == '\t' || s[next] == '\n' || s[next] == '\r') {
				next++
			}
			switch {
			case labelListKeywords[word]:
				// by (a, b), on(), group_left: the list, when there is one,
				// names labels.
				if next < len(s) && s[next] == '(' {
					end, err := skipGroup(s, next)
					if err != nil {
						return nil, err
					}
					i = end
				}
			case keywords[word] || aggregations[word]:
			case next < len(s) && s[next] == '(':
				// A function call.
			default:
				seen[word] = true
			}
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, errors.New("unclosed '('")
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

var (
	labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true}
	keywords = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true,
		"atan2": true, "inf": true, "Inf": true, "nan": true, "NaN": true}
	aggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true,
		"stddev": true, "stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
		"quantile": true, "limitk": true, "limit_ratio": true}
)

func isDigit(c rune) bool { return '0' <= c && c <= '9' }

func isIdentRune(c rune, first bool) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && isDigit(c)
}

// skipString returns the index after the string literal starting at i.
// Backquoted strings have no escapes.
func skipString(s []rune, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d", i)
}

// skipGroup returns the index after the bracket group starting at i,
// nested groups and strings inside included.
func skipGroup(s []rune, i int) (int, error) {
	closing := map[rune]rune{'(': ')', '{': '}', '[': ']'}
	var stack []rune
	for j := i; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case closing[c] != 0:
			stack = append(stack, closing[c])
		case c == ')' || c == '}' || c == ']':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return 0, fmt.Errorf("unbalanced %q at %d", c, j)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %q at %d", s[i], i)
}

func TestPromQLMetricNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`tollgate_a`, []string{"tollgate_a"}},
		{`sum by (le, script) (rate(tollgate_x_bucket{a="b}",c=~"[x]\"y"}[$__rate_interval] offset 1h))`, []string{"tollgate_x_bucket"}},
		{`sum(rate(tollgate_y{o!="charged"}[5m])) / ignoring(outcome) group_left sum without (p) (tollgate_z)`, []string{"tollgate_y", "tollgate_z"}},
		{"max(tollgate_lag) > 60 and on() absent(tollgate_up) or\n  tollgate_up == bool 0", []string{"tollgate_lag", "tollgate_up"}},
		{`histogram_quantile(0.99, sum by (le) (rate(tollgate_h_bucket[5m:1m]))) * 1e-6 + 2E+3 + .5`, []string{"tollgate_h_bucket"}},
		{`sum(rate(tollgate_a[${interval}])) / 1e6 > 3 * tollgate_b offset 1d`, []string{"tollgate_a", "tollgate_b"}},
		{`{__name__="tollgate_hidden"}`, nil},
		{"topk(3, tollgate_c) unless tollgate_d`", nil},
		{`sum(rate(tollgate_e[5m])`, nil},
	} {
		got, err := promqlMetricNames(c.expr)
		if c.want == nil {
			require.Error(t, err, c.expr)
			continue
		}
		require.NoError(t, err, c.expr)
		require.Equal(t, c.want, got, c.expr)
	}
}
