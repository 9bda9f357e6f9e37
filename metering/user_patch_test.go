package metering_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A rename is refused while usage of the user waits in the stream, however
// deep in the backlog (the script scans it in pages).
func TestRenameChecksUnreconciledUsage(t *testing.T) {
	t.Parallel()
	w := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	keys := map[string]string{}
	for _, name := range []string{"busy", "bob", "carl"} {
		_, key, err := w.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: name, InitialCredits: 5000 * metering.Micro})
		require.NoError(t, err)
		keys[name] = key
	}
	charge := func(name string) {
		res, err := w.Engine.Charge(ctx, keys[name], 1, "GET /x")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
	}
	for i := 0; i < 2500; i++ {
		charge("busy")
	}
	charge("bob") // behind 2,500 entries, past the first pages
	for i := 0; i < 10; i++ {
		charge("busy")
	}
	require.Greater(t, (&world{Bundle: w, ctx: ctx}).streamLen(t), int64(2500))

	name := "bobby"
	_, err := w.Engine.PatchUser(ctx, "test", "bob", metering.UserPatch{Username: &name})
	require.True(t, errors.Is(err, metering.ErrConflict), "%v", err)
	v, err := w.Engine.PatchUser(ctx, "test", "carl", metering.UserPatch{Username: &name})
	require.NoError(t, err)
	require.Equal(t, "bobby", v.Username)
	res, err := w.Engine.Charge(ctx, keys["carl"], 1, "GET /x")
	require.NoError(t, err)
	require.Equal(t, "bobby", res.Username)

	w.Drain(t)
	other := "bob2"
	_, err = w.Engine.PatchUser(ctx, "test", "bob", metering.UserPatch{Username: &other})
	require.True(t, errors.Is(err, metering.ErrConflict), "reconciled usage: %v", err)
	w.AssertConsistent(t)
}
