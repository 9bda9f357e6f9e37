package metering_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestUnusualRowFigures checks the figures a row derives from the exact
// twice-the-median: rounded down, never through floating point, and no
// ratio without a median. Reports over HTTP are tested in admin.
func TestUnusualRowFigures(t *testing.T) {
	for _, tc := range []struct {
		credits, median2        metering.Credits
		days                    int
		median, baseline, ratio string
	}{
		{cr(12), cr(2), 1, "1", "1", "12"},
		{cr(8), cr(3), 1, "1.5", "1.5", "5.33"},
		{7500003, 3000001, 1, "1.5", "1.5", "5"},
		{cr(18), cr(2), 7, "1", "7", "2.57"},
		{cr(1), cr(20), 1, "10", "10", "0.1"},
		{1, cr(2), 7, "1", "7", "0"},
		{cr(1), 0, 7, "0", "0", ""},
		{metering.MaxCredits * 7, 1, 1, "0", "0", "126100789566373874"}, // 200 × credits passes 2^63
	} {
		r := metering.UnusualRow{Credits: tc.credits, Median2: tc.median2}
		require.Equal(t, tc.median, r.Median().String())
		require.Equal(t, tc.baseline, r.Baseline(tc.days).String())
		ratio, ok := r.Ratio(tc.days)
		require.Equal(t, tc.ratio != "", ok)
		require.Equal(t, tc.ratio, ratio, "%+v", tc)
	}
}
