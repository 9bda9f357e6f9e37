package admin_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Moves between projects never create credits: a user who comes back to a
// project within the same period resumes the allowance and pool draw it
// left there; a project it never left gives its full allowance.

// position is a user's allowance_remaining, pool_available and
// effective_credits as the API shows them.
func (e *env) position(t *testing.T, name string) string {
	t.Helper()
	u := e.admin(t, "GET", "/users/"+name, "").requireStatus(t, http.StatusOK).body
	return fmt.Sprint(u["allowance_remaining"], " ", u["pool_available"], " ", u["effective_credits"])
}

// move patches a user's project ("null" for none) and returns its position.
func (e *env) move(t *testing.T, name, project string) string {
	t.Helper()
	if project != "null" {
		project = `"` + project + `"`
	}
	u := e.admin(t, "PATCH", "/users/"+name, `{"project":`+project+`}`).requireStatus(t, http.StatusOK).body
	return fmt.Sprint(u["allowance_remaining"], " ", u["pool_available"], " ", u["effective_credits"])
}

// twoProjects: "a" gives 10 a day (Berlin) with a pool of 100 and at most
// 4 drawn per user and day; "b" gives 7 a week (UTC) with a pool of 50.
func twoProjects(t *testing.T, e *env) {
	t.Helper()
	e.admin(t, "POST", "/projects", `{"name":"a","allowance":{"amount":10,"period":"daily","timezone":"Europe/Berlin"},
		"pool":{"enabled":true,"balance":100,"per_user_limit":4}}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/projects", `{"name":"b","allowance":{"amount":7,"period":"weekly"},
		"pool":{"enabled":true,"balance":50}}`).requireStatus(t, http.StatusCreated)
}

// The mis-click corrected: out of a project and straight back gives
// nothing, however often; the per-user pool limit holds across moves.
func TestMoveBackWithinThePeriodResumes(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC)) // a Wednesday
	twoProjects(t, e)
	key := e.createUserKey(t, `{"username":"ann","project":"a","initial_credits":1}`)
	require.Equal(t, metering.Split{Allowance: 10 * metering.Micro, Pool: 3 * metering.Micro}, e.charge(t, key, 13).Taken)
	require.Equal(t, "0 1 2", e.position(t, "ann"), "1 left of the pool limit, 1 awarded")

	for i := 0; i < 3; i++ {
		require.Equal(t, "7 50 58", e.move(t, "ann", "b"), "b given once: its full allowance")
		require.Equal(t, "0 1 2", e.move(t, "ann", "a"), "back in a: nothing new")
		require.Equal(t, "0 0 1", e.move(t, "ann", "null"))
		require.Equal(t, "0 1 2", e.move(t, "ann", "a"))
	}
	res := e.charge(t, key, 3)
	require.Equal(t, metering.Insufficient, res.Status, "the pool limit of 4 a day holds across moves")
	require.Equal(t, metering.Split{Pool: metering.Micro, Awarded: metering.Micro}, e.charge(t, key, 2).Taken)

	// b resumes what ann left there, within its week.
	require.Equal(t, "7 50 57", e.move(t, "ann", "b"))
	require.Equal(t, metering.Split{Allowance: 5 * metering.Micro}, e.charge(t, key, 5).Taken)
	require.Equal(t, "0 0 0", e.move(t, "ann", "a"))
	require.Equal(t, "2 50 52", e.move(t, "ann", "b"), "b's allowance where ann left it")

	// a's next day (Berlin): what ann left in a gives way to the new day's
	// allowance and pool draw; b's week goes on.
	e.Clock.Set(time.Date(2026, 3, 11, 23, 0, 0, 0, time.UTC))
	require.Equal(t, "10 4 14", e.move(t, "ann", "a"))
	require.Equal(t, metering.Split{Allowance: 10 * metering.Micro, Pool: 4 * metering.Micro}, e.charge(t, key, 14).Taken)
	require.Equal(t, "2 50 52", e.move(t, "ann", "b"))
	require.Equal(t, "0 0 0", e.move(t, "ann", "a"))

	e.Drain(t)
	e.AssertConsistent(t)
	var allowance, pool int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT coalesce(sum(-d_allowance), 0), coalesce(sum(d_pool_used), 0)
		FROM events WHERE kind = 'usage' AND username = 'ann'`).Scan(&allowance, &pool))
	require.Equal(t, int64(10+5+10)*int64(metering.Micro), allowance, "a twice (two days), b once")
	require.Equal(t, int64(3+1+4)*int64(metering.Micro), pool, "4 per day from a")
	var parks, resumes int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FILTER (WHERE kind = 'park'), count(*) FILTER (WHERE kind = 'resume')
		FROM events WHERE username = 'ann'`).Scan(&parks, &resumes))
	require.Equal(t, 15, parks, "every move out of a project")
	require.Equal(t, 14, resumes, "every move back into one")
}

// What a user left survives Redis losing it: a user hash gone from Redis
// loads from Postgres with its parked entries, and a Redis back without
// its last writes is healed with them (neither a second allowance nor a
// lost one).
func TestParkedAllowanceSurvivesRedisReload(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC))
	twoProjects(t, e)
	key := e.createUserKey(t, `{"username":"ann","project":"a"}`)
	require.Equal(t, metering.Split{Allowance: 6 * metering.Micro}, e.charge(t, key, 6).Taken)
	require.Equal(t, "7 50 57", e.move(t, "ann", "b"))
	e.Drain(t)
	snap := e.SnapshotRedis(t)

	// Redis forgets the user: a cold load brings what ann left in a.
	// Her hash is in the shard of the project she is in now (b).
	var id, projectID int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT id, project_id FROM users WHERE username = 'ann'`).Scan(&id, &projectID))
	require.NoError(t, e.Redis.Del(e.ctx, e.Engine.Keys().ShardOf(projectID, id).User(id)).Err())
	require.Equal(t, "7 50 57", e.position(t, "ann"))
	require.Equal(t, "4 4 8", e.move(t, "ann", "a"), "a's 4 left and 4 of the pool")

	// Redis comes back from before that return: healed from the ledger.
	require.Equal(t, metering.Split{Allowance: 4 * metering.Micro, Pool: metering.Micro}, e.charge(t, key, 5).Taken)
	require.Equal(t, "7 50 57", e.move(t, "ann", "b"))
	e.Drain(t)
	e.RestartRedisFrom(t, snap)
	require.Equal(t, "7 50 57", e.position(t, "ann"))
	require.Equal(t, "0 3 3", e.move(t, "ann", "a"), "a as ann left it the second time")
	e.Drain(t)
	e.AssertConsistent(t)
}

// A project without periods has one lasting pool draw per user: leaving
// and coming back, even from a project with periods, does not reset it.
func TestMoveBackToAProjectWithoutPeriods(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC))
	twoProjects(t, e)
	e.admin(t, "POST", "/projects", `{"name":"c","pool":{"enabled":true,"balance":100,"per_user_limit":6}}`).requireStatus(t, http.StatusCreated)
	key := e.createUserKey(t, `{"username":"ann","project":"c"}`)
	require.Equal(t, metering.Split{Pool: 6 * metering.Micro}, e.charge(t, key, 6).Taken)
	require.Equal(t, "0 0 0", e.position(t, "ann"))
	require.Equal(t, "0 0 0", e.move(t, "ann", "null"))
	require.Equal(t, "0 0 0", e.move(t, "ann", "c"), "the pool limit is not reset")
	require.Equal(t, "7 50 57", e.move(t, "ann", "b"))
	e.Clock.Set(time.Date(2027, 5, 1, 0, 0, 0, 0, time.UTC))
	require.Equal(t, "0 0 0", e.move(t, "ann", "c"), "nor a year later")
	e.Drain(t)
	e.AssertConsistent(t)
}
