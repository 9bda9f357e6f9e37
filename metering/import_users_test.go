package metering_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

func TestImportUsersSealsKeysAndValidates(t *testing.T) {
	t.Parallel()
	kek := bytes.Repeat([]byte{7}, 32)
	w := meteringtest.New(t, meteringtest.Options{KeyEncryptionKey: kek})
	ctx := context.Background()

	// Rows that did not come through the parser are still validated.
	res, err := w.Engine.ImportUsers(ctx, "test", []metering.ImportRow{
		{Line: 2, Spec: metering.UserSpec{Username: "ok"}},
		{Line: 3, Spec: metering.UserSpec{Username: "Not OK"}},
		{Line: 4, Spec: metering.UserSpec{Username: "neg", InitialCredits: -1}},
	}, false)
	require.NoError(t, err)
	require.False(t, res.OK())
	require.Equal(t, 0, res.Created)
	require.Empty(t, res.Rows[0].Err)
	require.Contains(t, res.Rows[1].Err, "username")
	require.Contains(t, res.Rows[2].Err, "initial_credits")
	_, err = w.Engine.ImportUsers(ctx, "test", nil, false)
	require.Error(t, err)

	res, err = w.Engine.ImportUsers(ctx, "test", []metering.ImportRow{
		{Line: 2, Spec: metering.UserSpec{Username: "ann", InitialCredits: 3 * metering.Micro}},
		{Line: 3, Spec: metering.UserSpec{Username: "bob"}},
	}, false)
	require.NoError(t, err)
	require.True(t, res.OK())
	require.Equal(t, 2, res.Created)

	// The sealed copy of each key decrypts to the key that was returned.
	sealer, err := metering.NewKeySealer(kek)
	require.NoError(t, err)
	for _, row := range res.Rows {
		var hash, sealed []byte
		require.NoError(t, w.DB.QueryRow(ctx, `SELECT k.lookup_hash, k.sealed FROM api_keys k
			JOIN users u ON u.id = k.user_id WHERE u.username = $1`, row.Username).Scan(&hash, &sealed))
		var h metering.KeyHash
		copy(h[:], hash)
		key, err := sealer.Open(sealed, h)
		require.NoError(t, err)
		require.Equal(t, row.APIKey, key)
	}
	v, err := w.Engine.GetUser(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, 3*metering.Micro, v.Live.Awarded)
	require.Equal(t, 3*metering.Micro, v.Awarded, "Postgres has the initial credits before the call returns")
	w.Drain(t)
	w.AssertConsistent(t)
}
