package caddymodule_test

import (
	"bufio"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// scrape is one scrape of a Prometheus text endpoint: each series' value
// by its name and labels ("name{a=\"x\",b=\"y\"}", labels sorted), and each
// metric family's type.
type scrape struct {
	values map[string]float64
	types  map[string]string
}

// scrapeMetrics reads url's metrics in the Prometheus text format.
func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	return parseExposition(t, resp.Body)
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseExposition(t *testing.T, r io.Reader) scrape {
	s := scrape{values: map[string]float64{}, types: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			s.types[f[2]] = f[3]
		}
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		require.Positive(t, sp, line)
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		require.NoError(t, err, line)
		series := line[:sp]
		name, labels := series, ""
		if b := strings.IndexByte(series, '{'); b >= 0 {
			name = series[:b]
			var pairs []string
			for _, m := range labelPair.FindAllStringSubmatch(series[b:], -1) {
				pairs = append(pairs, m[1]+`="`+m[2]+`"`)
			}
			sort.Strings(pairs)
			labels = "{" + strings.Join(pairs, ",") + "}"
		}
		s.values[name+labels] = v
	}
	require.NoError(t, sc.Err())
	return s
}

// get is a series' value (0 when absent: a counter not yet counted).
func (s scrape) get(series string) float64 { return s.values[series] }

// sum adds every series of a metric name.
func (s scrape) sum(name string) float64 {
	total := 0.0
	for k, v := range s.values {
		if seriesOf(k, name) {
			total += v
		}
	}
	return total
}

func seriesOf(series, name string) bool {
	return series == name || strings.HasPrefix(series, name+"{")
}

// has reports whether the scrape has a series named name: the names
// Prometheus stores, so a histogram's are name_bucket, name_sum and
// name_count, which is what a query must name.
func (s scrape) has(name string) bool {
	for k := range s.values {
		if seriesOf(k, name) {
			return true
		}
	}
	return false
}
