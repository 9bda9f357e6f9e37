package metering_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// An adjustment or a transfer that read its user from Postgres just before
// the user was deleted must not act on the deleted user's tombstone in
// Redis: nothing is written, no event appears, and the caller learns the
// user is gone.
func TestMoneyScriptsRefuseDeletedUsers(t *testing.T) {
	t.Parallel()
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	for _, name := range []string{"ann", "bob"} {
		_, _, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: name, InitialCredits: 100 * metering.Micro})
		require.NoError(t, err)
		_, err = b.Engine.GetUser(ctx, name) // loads the user into Redis
		require.NoError(t, err)
	}
	ann, err := b.Engine.UserRowForTest(ctx, "ann")
	require.NoError(t, err)
	bob, err := b.Engine.UserRowForTest(ctx, "bob")
	require.NoError(t, err)
	b.Drain(t)
	require.NoError(t, b.Engine.DeleteUser(ctx, "test", "bob"))
	tomb, err := b.Redis.HGetAll(ctx, b.Engine.Keys().ShardOf(bob.ProjectID, bob.ID).User(bob.ID)).Result()
	require.NoError(t, err)
	require.NotEmpty(t, tomb, "the deleted user's hash stays as a tombstone")
	streamLen := func() int64 {
		n, err := b.Redis.XLen(ctx, b.Engine.Keys().Shard(0).Events()).Result()
		require.NoError(t, err)
		return n
	}
	before := streamLen()

	require.ErrorIs(t, b.Engine.AdjustAsRead(ctx, bob, 5*metering.Micro), metering.ErrNotFound)
	require.ErrorIs(t, b.Engine.TransferAsRead(ctx, ann, bob, 5*metering.Micro), metering.ErrNotFound)
	require.ErrorIs(t, b.Engine.TransferAsRead(ctx, bob, ann, 5*metering.Micro), metering.ErrNotFound)

	after, err := b.Redis.HGetAll(ctx, b.Engine.Keys().ShardOf(bob.ProjectID, bob.ID).User(bob.ID)).Result()
	require.NoError(t, err)
	require.Equal(t, tomb, after, "a money script changed the tombstone")
	require.Equal(t, before, streamLen(), "a money script appended an event for a deleted user")
	v, err := b.Engine.GetUser(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, 100*metering.Micro, v.Live.Awarded)
	b.Drain(t)
	b.AssertConsistent(t)
}
