package metering_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// TestZeroBalanceWithoutClocks: the balance=zero filter builds a CASE per
// allowance clock in use; with no project at all, or only projects
// without periods, there are none, and the listing must still work.
func TestZeroBalanceWithoutClocks(t *testing.T) {
	w := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	zeroUsers := func() []string {
		t.Helper()
		views, _, err := w.Engine.FindUsers(ctx, metering.UserQuery{Balance: metering.BalanceZero})
		require.NoError(t, err)
		var names []string
		for _, v := range views {
			names = append(names, v.Username)
		}
		return names
	}
	_, _, err := w.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "empty"})
	require.NoError(t, err)
	_, _, err = w.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "rich", InitialCredits: 5 * metering.Micro})
	require.NoError(t, err)
	require.Equal(t, []string{"empty"}, zeroUsers(), "no project at all")

	_, err = w.Engine.CreateProject(ctx, "test", metering.ProjectSpec{Name: "flat", Period: metering.PeriodNone, TimeZone: "Europe/Berlin"})
	require.NoError(t, err)
	_, _, err = w.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "member", Project: "flat"})
	require.NoError(t, err)
	require.Equal(t, []string{"empty", "member"}, zeroUsers(), "only a project without periods")
}
