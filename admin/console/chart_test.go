package console

import (
	"strings"
	"testing"
)

func TestBarChart(t *testing.T) {
	l := newLocalizer("de")
	svg := string(barChart(l, `Credits "pro" Tag`, []chartPoint{
		{Label: "1.11.", Value: 1_500_000},
		{Label: "<2.11.>", Value: 0},
		{Label: "3.11.", Value: 1234_567_891},
	}))
	if n := strings.Count(svg, `<rect class="bar"`); n != 3 {
		t.Fatalf("want 3 bars, got %d: %s", n, svg)
	}
	for _, want := range []string{
		`aria-label="Credits &#34;pro&#34; Tag"`, // the caption is escaped
		`<title>1.11.: 1,5</title>`,              // exact values, German format
		`<title>3.11.: 1.234,567891</title>`,
		`&lt;2.11.&gt;`, // labels are escaped
		`>1.234,567891</text>`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %s:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "style=") || strings.Contains(svg, "<script") {
		t.Errorf("the CSP forbids inline style and script: %s", svg)
	}

	empty := string(barChart(l, "x", nil))
	if strings.Count(empty, `text-anchor="end">0</text>`) != 1 || !strings.Contains(empty, l.T("chart.empty")) {
		t.Errorf("an empty chart has one 0 on its axis and says it is empty: %s", empty)
	}
}
