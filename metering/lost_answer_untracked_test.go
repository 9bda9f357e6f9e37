package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// What in_flight_lease off gives up, stated as a test: an untracked charge
// that runs in Redis but whose answer is lost stays charged (nothing
// records what it took), exactly once, and nothing is left in flight. Its
// tracked counterpart is TestLostAnswerChargeIsUndone.
func TestLostAnswerUntrackedChargeStays(t *testing.T) {
	t.Parallel()
	w := newLostAnswerWorld(t)
	ctx := context.Background()
	// One untracked charge first, so its script is in the server's cache:
	// an EVALSHA that met NOSCRIPT would not have run, and with its answer
	// dropped the runner could not send the source instead.
	_, err := w.gw.Charge(ctx, w.key, metering.Micro, "GET /warm-untracked")
	require.NoError(t, err)
	before := w.effective(t)

	w.proxy.DropReplies()
	_, err = w.gw.Charge(ctx, w.key, 2*metering.Micro, "GET /lost-untracked")
	require.ErrorIs(t, err, metering.ErrOutcomeUnknown)
	require.ErrorIs(t, err, metering.ErrUnavailable)

	require.NoError(t, w.gw.WaitForRepairs(ctx))
	// The proxy passes the command on but drops the answer; on a loaded
	// machine the command may reach Redis after the client gave up, so
	// its effect is awaited (it must come, and only once: checked below).
	require.Eventually(t, func() bool { return w.effective(t) == before-2*metering.Micro }, 30*time.Second,
		5*time.Millisecond, "the charge ran once and stays")
	require.Zero(t, w.inFlight(t))
	w.b.Drain(t)
	w.b.AssertConsistent(t)
	require.Equal(t, map[string]int{"usage": 1}, w.ledger(t, "GET /lost-untracked"))
}
