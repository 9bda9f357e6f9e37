package admin_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func TestPatchProjectAppliesToNextCharge(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	e.admin(t, "POST", "/projects", `{"name":"p","allowance":{"amount":5,"period":"daily"},"pool":{"enabled":true,"balance":100}}`).
		requireStatus(t, http.StatusCreated)
	key := e.createUserKey(t, `{"username":"ann","project":"p","initial_credits":100}`)
	charge := func(cost float64) metering.Split {
		t.Helper()
		res, err := e.Engine.Charge(e.ctx, key, metering.Credits(cost*1e6), "GET /x")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
		return res.Taken
	}
	c := func(v float64) metering.Credits { return metering.Credits(v * 1e6) }
	require.Equal(t, metering.Split{Allowance: c(5)}, charge(5))
	require.Equal(t, metering.Split{Pool: c(3)}, charge(3))

	r := e.admin(t, "PATCH", "/projects/p", `{"pool":{"enabled":false}}`).requireStatus(t, http.StatusOK)
	m := requireKeys(t, r.body, projectKeys...)
	require.Equal(t, map[string]any{"enabled": false, "balance": num("97"), "per_user_limit": nil}, m["pool"])
	require.Equal(t, map[string]any{"amount": num("5"), "period": "daily", "timezone": "UTC"}, m["allowance"], "untouched")
	require.Equal(t, metering.Split{Awarded: c(2)}, charge(2), "pool disabled at once")

	r = e.admin(t, "PATCH", "/projects/p", `{"pool":{"enabled":true,"per_user_limit":4}}`).requireStatus(t, http.StatusOK)
	require.Equal(t, map[string]any{"enabled": true, "balance": num("97"), "per_user_limit": num("4")}, r.body["pool"])
	require.Equal(t, metering.Split{Pool: c(1), Awarded: c(1)}, charge(2), "3 of the 4 already drawn this period")
	e.admin(t, "PATCH", "/projects/p", `{"pool":{"per_user_limit":null}}`).requireStatus(t, http.StatusOK)
	require.Equal(t, metering.Split{Pool: c(1)}, charge(1), "limit removed")

	// A new allowance amount applies from the next refill.
	r = e.admin(t, "PATCH", "/projects/p", `{"allowance":{"amount":10}}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("10"), r.body["allowance"].(map[string]any)["amount"])
	require.Equal(t, metering.Split{Pool: c(1)}, charge(1))
	e.Clock.Advance(24 * time.Hour)
	require.Equal(t, metering.Split{Allowance: c(1)}, charge(1))
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("9"), r.body["allowance_remaining"])

	r = e.admin(t, "PATCH", "/projects/p", `{"allowance":{"period":"monthly","timezone":"Europe/Berlin"}}`).requireStatus(t, http.StatusOK)
	require.Equal(t, map[string]any{"amount": num("10"), "period": "monthly", "timezone": "Europe/Berlin"}, r.body["allowance"])
	require.Equal(t, metering.Split{Allowance: c(1)}, charge(1), "same period: no refill")
	var version int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT version FROM projects WHERE name = 'p'`).Scan(&version))
	require.Equal(t, int64(6), version, "each change bumps the version")
	var action, actor string
	var details map[string]any
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT action, actor, details FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&action, &actor, &details))
	require.Equal(t, "project.update", action)
	require.Equal(t, "ops", actor)
	require.Equal(t, map[string]any{"allowance.period": "monthly", "allowance.timezone": "Europe/Berlin"}, details)

	// Bad input: 400 naming the field, nothing written.
	audits := e.countRows(t, "audit_log")
	for body, field := range map[string]string{
		`{"allowance":{"period":"hourly"}}`:                  "allowance.period",
		`{"allowance":{"timezone":"Mars/Olympus"}}`:          "allowance.timezone",
		`{"allowance":{"amount":-1}}`:                        "allowance.amount",
		`{"allowance":{"amount":null}}`:                      "allowance.amount",
		`{"allowance":{"amount":0.1234567}}`:                 "allowance.amount",
		`{"pool":{"per_user_limit":-1}}`:                     "pool.per_user_limit",
		`{"pool":{"balance":5}}`:                             "pool.balance",
		`{"name":"q"}`:                                       "name",
		`{"pool":{"enabled":"yes"}}`:                         "pool.enabled",
		`{"allowance":{"amount":1,"period":"weekly","x":1}}`: "x",
	} {
		e.admin(t, "PATCH", "/projects/p", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	require.Equal(t, audits, e.countRows(t, "audit_log"))
	e.admin(t, "PATCH", "/projects/nope", `{"pool":{"enabled":true}}`).requireError(t, http.StatusNotFound, "not_found", "")
	e.do(t, "PATCH", base+"/projects/p", viewerSecret, `{"pool":{"enabled":true}}`).requireError(t, http.StatusForbidden, "forbidden", "")

	// Pool deductions check the live balance, which charges have drawn from
	// (100 - 3 - 1 - 1 - 1): 409 below zero, nothing taken.
	r = e.admin(t, "GET", "/projects/p", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("94"), r.body["pool"].(map[string]any)["balance"])
	e.admin(t, "POST", "/projects/p/pool", `{"delta":-94.000001}`).requireError(t, http.StatusConflict, "conflict", "")
	r = e.admin(t, "POST", "/projects/p/pool", `{"delta":-94,"note":"closing"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("0"), r.body["pool"].(map[string]any)["balance"])
	e.Drain(t)
	e.AssertConsistent(t)
}

func TestSettleProject(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	e.admin(t, "POST", "/projects", `{"name":"s","allowance":{"amount":5,"period":"daily"}}`).requireStatus(t, http.StatusCreated)
	key := e.createUserKey(t, `{"username":"a","project":"s","monthly_grant":2,"partner":true}`)
	e.createUserKey(t, `{"username":"b","project":"s"}`)
	e.createUserKey(t, `{"username":"c","monthly_grant":3,"partner":true}`)
	res, err := e.Engine.Charge(e.ctx, key, metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	e.Drain(t)

	pg := func(user string) string {
		var a, ap, pr, gm int64
		require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT allowance_remaining, allowance_period, purchased, grant_month
			FROM users WHERE username = $1`, user).Scan(&a, &ap, &pr, &gm))
		return fmt.Sprint(a, ap, pr, gm)
	}
	march, april := int64(2026*12+2), int64(2026*12+3)
	mar2 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).Unix()
	require.Equal(t, fmt.Sprint(4_000_000, mar2, 0, march), pg("a"), "the grant starts on April 1st")
	require.Equal(t, fmt.Sprint(0, -1, 0, march), pg("b"), "b never used its key: nothing refilled yet")

	// April 1st: the settle refills both members and pays a's grant, in
	// Postgres before the answer (no reconciler ran).
	e.Clock.Set(time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC))
	r := e.admin(t, "POST", "/projects/s/settle", "").requireStatus(t, http.StatusOK)
	requireKeys(t, r.body, projectKeys...)
	require.Equal(t, "s", r.body["name"])
	apr1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).Unix()
	require.Equal(t, fmt.Sprint(5_000_000, apr1, 2_000_000, april), pg("a"))
	require.Equal(t, fmt.Sprint(5_000_000, apr1, 0, march), pg("b"))
	require.Equal(t, fmt.Sprint(0, -1, 0, march), pg("c"), "not a member")
	var action string
	var details map[string]any
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT action, details FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&action, &details))
	require.Equal(t, "project.settle", action)
	require.Equal(t, map[string]any{"members": float64(2), "refills": float64(2), "grants": float64(1)}, details)

	// Nothing more is due: a second settle writes no events.
	events := e.countRows(t, "events")
	e.admin(t, "POST", "/projects/s/settle", "").requireStatus(t, http.StatusOK)
	require.Equal(t, events, e.countRows(t, "events"))
	// The member's next charge does not refill again.
	res, err = e.Engine.Charge(e.ctx, key, metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Split{Allowance: metering.Micro}, res.Taken)

	e.admin(t, "POST", "/projects/nope/settle", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.do(t, "POST", base+"/projects/s/settle", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")
	e.Drain(t)
	e.AssertConsistent(t)
}

func TestDeleteProject(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"d","pool":{"enabled":true,"balance":10}}`).requireStatus(t, http.StatusCreated)
	key := e.createUserKey(t, `{"username":"ann","project":"d"}`)
	res, err := e.Engine.Charge(e.ctx, key, metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	e.Drain(t)

	e.admin(t, "DELETE", "/projects/d", "").requireError(t, http.StatusConflict, "conflict", "")
	e.admin(t, "GET", "/projects/d", "").requireStatus(t, http.StatusOK)
	e.do(t, "DELETE", base+"/projects/d", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")

	// Unassigned (directly in SQL until PATCH /users exists), it can go.
	var id int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT id FROM projects WHERE name = 'd'`).Scan(&id))
	_, err = e.DB.Exec(e.ctx, `UPDATE users SET project_id = NULL WHERE username = 'ann'`)
	require.NoError(t, err)
	require.EqualValues(t, 1, e.Redis.Exists(e.ctx, e.Engine.Keys().ProjectShard(id).Project(id)).Val())
	r := e.admin(t, "DELETE", "/projects/d", "").requireStatus(t, http.StatusNoContent)
	require.Empty(t, r.raw)
	e.admin(t, "GET", "/projects/d", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "DELETE", "/projects/d", "").requireError(t, http.StatusNotFound, "not_found", "")
	require.EqualValues(t, 0, e.Redis.Exists(e.ctx, e.Engine.Keys().ProjectShard(id).Project(id)).Val(), "its Redis hash is gone")
	var action, target string
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT action, target FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&action, &target))
	require.Equal(t, "project.delete/d", action+"/"+target)

	// Usage history stays.
	r = e.admin(t, "GET", "/usage?project=d&group_by=project", "").requireStatus(t, http.StatusOK)
	requireRows(t, r, with(usageSums{requests: 1, credits: metering.Micro, pool: metering.Micro}, "project", "d"))
	// The name is free again.
	e.admin(t, "POST", "/projects", `{"name":"d"}`).requireStatus(t, http.StatusCreated)
}

// TestDeleteProjectRacesAssignment: a delete racing user creations into the
// project either sees a user (409) or wins, and then no creation succeeded.
func TestDeleteProjectRacesAssignment(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for round := 0; round < 5; round++ {
		name := fmt.Sprintf("r%d", round)
		e.admin(t, "POST", "/projects", `{"name":"`+name+`"}`).requireStatus(t, http.StatusCreated)
		var wg sync.WaitGroup
		created := make(chan int, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.admin(t, "POST", "/users", fmt.Sprintf(`{"username":"%s-u%d","project":%q}`, name, i, name))
				created <- r.status
			}()
		}
		del := e.admin(t, "DELETE", "/projects/"+name, "")
		wg.Wait()
		close(created)
		ok := 0
		for s := range created {
			if s == http.StatusCreated {
				ok++
			}
		}
		var members int
		require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM users u JOIN projects p ON p.id = u.project_id WHERE p.name = $1`, name).Scan(&members))
		require.Equal(t, ok, members)
		switch del.status {
		case http.StatusNoContent:
			require.Zero(t, ok, "round %d: deleted, yet a user was assigned", round)
		case http.StatusConflict:
			require.NotZero(t, ok)
		default:
			t.Fatalf("delete answered %d %s", del.status, del.raw)
		}
	}
}
