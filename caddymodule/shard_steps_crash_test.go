package caddymodule_test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// Operations between Redis shards, cut short by a killed gateway.

// A transfer between users in different Redis shards takes two steps. A
// gateway killed (SIGKILL, at the failpoint between them) after the debit
// leaves the transfer pending; the sweeper of another gateway finishes it
// once it is older than the grace: the destination is credited once, the
// ledger holds both events once, and Redis and Postgres agree.
func TestTransferKilledBetweenItsStepsIsFinishedOnce(t *testing.T) {
	clock := meteringtest.NewClock(time.Now())
	b := meteringtest.New(t, meteringtest.Options{Clock: clock, RedisShards: 4})
	ctx := context.Background()
	ann, _, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)
	bob, _, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "bob", InitialCredits: 1 * metering.Micro})
	require.NoError(t, err)
	keys := b.Engine.Keys()
	require.NotEqual(t, keys.ShardOf(0, ann.ID), keys.ShardOf(0, bob.ID), "ann and bob must be in different shards")

	listen := freePort(t)
	gw := startGatewayProcess(t, listen, gatewayConfig(t, b, listen, "127.0.0.1:9", meteringtest.RedisURL()),
		"TOLLGATE_FAILPOINT=transfer-after-debit")
	adminCallKilled(t, gw, "POST", "http://"+listen+"/admin/v1/transfers",
		`{"from": "ann", "to": "bob", "amount": 4, "note": "cut short"}`)

	live := func(name string) metering.Credits {
		v, err := b.Engine.GetUser(ctx, name)
		require.NoError(t, err)
		return v.Live.Awarded
	}
	require.Equal(t, 6*metering.Micro, live("ann"), "debited")
	require.Equal(t, 1*metering.Micro, live("bob"), "not yet credited")

	sw, err := b.Engine.NewSweeper(metering.SweeperConfig{Policy: metering.SweepRefund})
	require.NoError(t, err)
	clock.Advance(2 * time.Minute) // past the grace in which the transfer was its gateway's
	for i := 0; i < 2; i++ {
		_, err = sw.RunOnce(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, 6*metering.Micro, live("ann"))
	require.Equal(t, 5*metering.Micro, live("bob"), "credited once")
	var pending, events int
	require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM pending_transfers`).Scan(&pending))
	require.Zero(t, pending)
	require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'transfer'`).Scan(&events))
	require.Equal(t, 2, events, "debit and credit, once each")
	b.Drain(t)
	b.AssertConsistent(t)
}

// A gateway killed (SIGKILL, at the failpoint) in the middle of moving a
// user to a project in another shard, after the user's hash was copied
// there and before Postgres committed: the transaction dies with the
// gateway, and another gateway's sweeper undoes the move once it is older
// than the grace; the user is charged in its old project as before.
func TestMoveKilledBetweenItsStepsIsUndone(t *testing.T) {
	clock := meteringtest.NewClock(time.Now())
	b := meteringtest.New(t, meteringtest.Options{Clock: clock, RedisShards: 4})
	ctx := context.Background()
	keys := b.Engine.Keys()
	a, err := b.Engine.CreateProject(ctx, "test", metering.ProjectSpec{Name: "a", AllowanceAmount: 5 * metering.Micro,
		Period: metering.PeriodDaily})
	require.NoError(t, err)
	p, err := b.Engine.CreateProject(ctx, "test", metering.ProjectSpec{Name: "b"})
	require.NoError(t, err)
	require.NotEqual(t, keys.ProjectShard(a.ID), keys.ProjectShard(p.ID), "a and b must be in different shards")
	_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", Project: "a", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)
	res, err := b.Engine.Charge(ctx, key, 2*metering.Micro, "GET /test")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	before, err := b.Engine.GetUser(ctx, "ann")
	require.NoError(t, err)

	listen := freePort(t)
	gw := startGatewayProcess(t, listen, gatewayConfig(t, b, listen, "127.0.0.1:9", meteringtest.RedisURL()),
		"TOLLGATE_FAILPOINT=move-after-copy")
	adminCallKilled(t, gw, "PATCH", "http://"+listen+"/admin/v1/users/ann", `{"project": "b"}`)
	var pending int
	require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM pending_moves`).Scan(&pending))
	require.Equal(t, 1, pending, "the move is left half done")

	sw, err := b.Engine.NewSweeper(metering.SweeperConfig{Policy: metering.SweepRefund})
	require.NoError(t, err)
	clock.Advance(2 * time.Minute)
	_, err = sw.RunOnce(ctx)
	require.NoError(t, err)
	require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM pending_moves`).Scan(&pending))
	require.Zero(t, pending)
	after, err := b.Engine.GetUser(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, "a", after.ProjectName)
	require.Equal(t, before.Live, after.Live)
	res, err = b.Engine.Charge(ctx, key, 1*metering.Micro, "GET /test")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	b.Drain(t)
	b.AssertConsistent(t)
}

// adminCallKilled makes an admin API call that kills the gateway at its
// failpoint: no answer comes, and the process ends by SIGKILL.
func adminCallKilled(t *testing.T, gw *gatewayProcess, method, url, body string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer admin-secret")
	req.Header.Set("Content-Type", "application/json")
	_, err = (&http.Client{Timeout: time.Minute}).Do(req)
	require.Error(t, err, "the gateway dies before it answers")
	<-gw.done
	var exit *exec.ExitError
	require.ErrorAs(t, gw.err, &exit)
	require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "killed at the failpoint: %v", gw.err)
}
