package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// usageSums is what a report row should carry, from the charges' splits.
type usageSums struct {
	requests                                     int64
	credits, allowance, pool, awarded, purchased metering.Credits
}

func (s *usageSums) add(cost metering.Credits, sp metering.Split) {
	s.requests++
	s.credits += cost
	s.allowance += sp.Allowance
	s.pool += sp.Pool
	s.awarded += sp.Awarded
	s.purchased += sp.Purchased
}

func (s usageSums) json() map[string]any {
	c := func(v metering.Credits) json.Number { return json.Number(v.String()) }
	return map[string]any{"requests": json.Number(fmt.Sprint(s.requests)), "credits": c(s.credits),
		"allowance": c(s.allowance), "pool": c(s.pool), "awarded": c(s.awarded), "purchased": c(s.purchased)}
}

func (s usageSums) csv() string {
	return fmt.Sprintf("%d,%s,%s,%s,%s,%s", s.requests, s.credits, s.allowance, s.pool, s.awarded, s.purchased)
}

func sumOf(parts ...usageSums) usageSums {
	var t usageSums
	for _, p := range parts {
		t.requests += p.requests
		t.credits += p.credits
		t.allowance += p.allowance
		t.pool += p.pool
		t.awarded += p.awarded
		t.purchased += p.purchased
	}
	return t
}

// requireRows checks a JSON report: each row is key fields plus the sums.
func requireRows(t *testing.T, r *response, want ...map[string]any) {
	t.Helper()
	rows, ok := r.body["rows"].([]any)
	require.True(t, ok, "rows in %s", r.raw)
	require.Len(t, rows, len(want), "body %s", r.raw)
	for i, w := range want {
		require.Equal(t, w, rows[i], "row %d of %s", i, r.raw)
	}
}

func with(s usageSums, kv ...any) map[string]any {
	m := s.json()
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestUsageReports(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 2, 27, 12, 0, 0, 0, time.UTC))
	e.admin(t, "POST", "/projects", `{"name":"teach","allowance":{"amount":3,"period":"daily"},"pool":{"enabled":true,"balance":4}}`).
		requireStatus(t, http.StatusCreated)
	keys := map[string]string{
		"ann": e.createUserKey(t, `{"username":"ann","project":"teach","initial_credits":50}`),
		"bob": e.createUserKey(t, `{"username":"bob","project":"teach","initial_credits":50,"purchased":5}`),
		"cid": e.createUserKey(t, `{"username":"cid","initial_credits":1,"purchased":100}`),
	}
	type cell struct{ day, user string }
	got := map[cell]*usageSums{}
	charge := func(user string, cost metering.Credits) {
		res, err := e.Engine.Charge(e.ctx, keys[user], cost, "POST /v1/chat/completions")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status, "%s %s: %+v", user, cost, res)
		c := cell{e.Clock.Now().UTC().Format(time.DateOnly), user}
		if got[c] == nil {
			got[c] = &usageSums{}
		}
		got[c].add(cost, res.Taken)
	}
	charge("ann", 2*metering.Micro) // February: outside the default range
	e.Clock.Set(time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC))
	for i := 0; i < 4; i++ {
		charge("ann", 1500000) // allowance, then pool, then awarded
	}
	charge("cid", 2*metering.Micro)
	e.Clock.Set(time.Date(2026, 3, 11, 0, 1, 0, 0, time.UTC))
	charge("ann", 250000)
	charge("bob", 58*metering.Micro) // every bucket
	charge("cid", 500000)
	e.Drain(t)

	s := func(day, user string) usageSums {
		if v := got[cell{day, user}]; v != nil {
			return *v
		}
		return usageSums{}
	}
	feb, m10, m11 := "2026-02-27", "2026-03-10", "2026-03-11"
	require.NotZero(t, s(m10, "ann").pool, "the test exercises the pool")
	require.NotZero(t, s(m11, "bob").purchased, "the test exercises purchased")
	march := sumOf(s(m10, "ann"), s(m10, "cid"), s(m11, "ann"), s(m11, "bob"), s(m11, "cid"))

	// Defaults: the current month (the clock's), one total row.
	requireRows(t, e.admin(t, "GET", "/usage", "").requireStatus(t, http.StatusOK), march.json())
	requireRows(t, e.do(t, "GET", base+"/usage?group_by=none&format=json", viewerSecret, "").requireStatus(t, http.StatusOK), march.json())

	// By day over a range that includes February; a date as to is included.
	requireRows(t, e.admin(t, "GET", "/usage?group_by=day&from=2026-02-01&to=2026-04-01", "").requireStatus(t, http.StatusOK),
		with(s(feb, "ann"), "day", feb),
		with(sumOf(s(m10, "ann"), s(m10, "cid")), "day", m10),
		with(sumOf(s(m11, "ann"), s(m11, "bob"), s(m11, "cid")), "day", m11))
	requireRows(t, e.admin(t, "GET", "/usage?group_by=day&from=2026-03-10&to=2026-03-10", "").requireStatus(t, http.StatusOK),
		with(sumOf(s(m10, "ann"), s(m10, "cid")), "day", m10))
	// Only to: its month, up to it.
	requireRows(t, e.admin(t, "GET", "/usage?to=2026-02-28", "").requireStatus(t, http.StatusOK), s(feb, "ann").json())
	requireRows(t, e.admin(t, "GET", "/usage?to=2026-03-01", "").requireStatus(t, http.StatusOK), usageSums{}.json())
	// RFC 3339 bounds widen to whole UTC days.
	requireRows(t, e.admin(t, "GET", "/usage?group_by=day&from=2026-03-11T00:30:00Z&to=2026-03-11T01:00:00%2B00:00", "").requireStatus(t, http.StatusOK),
		with(sumOf(s(m11, "ann"), s(m11, "bob"), s(m11, "cid")), "day", m11))

	// By user and by project; usage outside any project is project null.
	requireRows(t, e.admin(t, "GET", "/usage?group_by=user", "").requireStatus(t, http.StatusOK),
		with(sumOf(s(m10, "ann"), s(m11, "ann")), "user", "ann"),
		with(s(m11, "bob"), "user", "bob"),
		with(sumOf(s(m10, "cid"), s(m11, "cid")), "user", "cid"))
	requireRows(t, e.admin(t, "GET", "/usage?group_by=project", "").requireStatus(t, http.StatusOK),
		with(sumOf(s(m10, "cid"), s(m11, "cid")), "project", nil),
		with(sumOf(s(m10, "ann"), s(m11, "ann"), s(m11, "bob")), "project", "teach"))

	// Filters.
	requireRows(t, e.admin(t, "GET", "/usage?user=ann&group_by=day&from=2026-01-01", "").requireStatus(t, http.StatusOK),
		with(s(feb, "ann"), "day", feb), with(s(m10, "ann"), "day", m10), with(s(m11, "ann"), "day", m11))
	requireRows(t, e.admin(t, "GET", "/usage?project=teach&group_by=user", "").requireStatus(t, http.StatusOK),
		with(sumOf(s(m10, "ann"), s(m11, "ann")), "user", "ann"), with(s(m11, "bob"), "user", "bob"))
	requireRows(t, e.admin(t, "GET", "/usage?user=nobody&group_by=day", "").requireStatus(t, http.StatusOK))
	requireRows(t, e.admin(t, "GET", "/usage?user=nobody", "").requireStatus(t, http.StatusOK), usageSums{}.json())

	// CSV: the same rows.
	status, ctype, body := e.raw(t, "/usage?group_by=user&format=csv")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "text/csv; charset=utf-8", ctype)
	require.Equal(t, strings.Join([]string{
		"user,requests,credits,allowance,pool,awarded,purchased",
		"ann," + sumOf(s(m10, "ann"), s(m11, "ann")).csv(),
		"bob," + s(m11, "bob").csv(),
		"cid," + sumOf(s(m10, "cid"), s(m11, "cid")).csv(), ""}, "\n"), body)
	_, _, body = e.raw(t, "/usage?group_by=project&format=csv")
	require.Equal(t, "project,requests,credits,allowance,pool,awarded,purchased\n,"+
		sumOf(s(m10, "cid"), s(m11, "cid")).csv()+"\nteach,"+sumOf(s(m10, "ann"), s(m11, "ann"), s(m11, "bob")).csv()+"\n", body)
	_, _, body = e.raw(t, "/usage?format=csv&group_by=day")
	require.Equal(t, "day,requests,credits,allowance,pool,awarded,purchased\n"+
		m10+","+sumOf(s(m10, "ann"), s(m10, "cid")).csv()+"\n"+m11+","+sumOf(s(m11, "ann"), s(m11, "bob"), s(m11, "cid")).csv()+"\n", body)
	_, _, body = e.raw(t, "/usage?format=csv")
	require.Equal(t, "requests,credits,allowance,pool,awarded,purchased\n"+march.csv()+"\n", body)

	// Bad parameters: 400 naming the field.
	for query, field := range map[string]string{
		"group_by=week":                 "group_by",
		"format=xml":                    "format",
		"from=2026-13-01":               "from",
		"from=yesterday":                "from",
		"to=2026-03-32":                 "to",
		"from=2026-03-10&to=2026-03-09": "to",
		"from=2026-03-10T00:00:00Z&to=2026-03-10T00:00:00Z": "to",
		"user=Ann":                  "user",
		"project=a%20b":             "project",
		"groupby=day":               "groupby",
		"from=2026-03-10T25:00:00Z": "from",
	} {
		e.admin(t, "GET", "/usage?"+query, "").requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	e.do(t, "GET", base+"/usage", "", "").requireError(t, http.StatusUnauthorized, "unauthenticated", "")
}

// TestUsageRollupReplayAndDeletion: replayed events add nothing to the
// rollup, and a deleted user's usage stays reported.
func TestUsageRollupReplayAndDeletion(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC))
	key := e.createUserKey(t, `{"username":"ann","initial_credits":100}`)
	e.createUserKey(t, `{"username":"bob","initial_credits":100}`)
	for i := 0; i < 5; i++ {
		res, err := e.Engine.Charge(e.ctx, key, 2*metering.Micro, "GET /x")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
	}
	// Keep a copy of every shard's stream to replay it after it is
	// reconciled, each into its own shard's stream.
	streams := map[string][]redis.XMessage{}
	for _, sh := range e.Engine.Keys().Shards() {
		entries, err := e.Redis.XRange(e.ctx, sh.Events(), "-", "+").Result()
		require.NoError(t, err)
		if len(entries) > 0 {
			streams[sh.Events()] = entries
		}
	}
	require.NotEmpty(t, streams)
	e.Drain(t)
	want := with(usageSums{requests: 5, credits: 10 * metering.Micro, awarded: 10 * metering.Micro}, "user", "ann")
	requireRows(t, e.admin(t, "GET", "/usage?group_by=user", "").requireStatus(t, http.StatusOK), want)

	for stream, entries := range streams {
		for _, m := range entries {
			require.NoError(t, e.Redis.XAdd(e.ctx, &redis.XAddArgs{Stream: stream, Values: m.Values}).Err())
		}
	}
	e.Drain(t)
	requireRows(t, e.admin(t, "GET", "/usage?group_by=user", "").requireStatus(t, http.StatusOK), want)
	e.AssertConsistent(t)

	// The user goes (straight in SQL); its usage stays.
	_, err := e.DB.Exec(e.ctx, `DELETE FROM users WHERE username = 'ann'`)
	require.NoError(t, err)
	requireRows(t, e.admin(t, "GET", "/usage?group_by=user", "").requireStatus(t, http.StatusOK), want)
	requireRows(t, e.admin(t, "GET", "/usage?user=ann&group_by=day", "").requireStatus(t, http.StatusOK),
		with(usageSums{requests: 5, credits: 10 * metering.Micro, awarded: 10 * metering.Micro}, "day", "2026-05-04"))
}

// TestUsageByModel: variable-cost usage is reported per model (fixed-cost
// usage under model null), and the model filter selects it.
func TestUsageByModel(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC))
	key := e.createUserKey(t, `{"username":"ann","initial_credits":100}`)
	_, err := e.Engine.PutPrice(e.ctx, "test", metering.Price{Model: "openai/gpt-4o", InputPerMillion: 2 * metering.Micro})
	require.NoError(t, err)
	res, err := e.Engine.Charge(e.ctx, key, 3*metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	r, err := e.Engine.Reserve(e.ctx, metering.ReserveRequest{Key: key, Model: "openai/gpt-4o",
		Estimate: metering.Units{InputTokens: 2_000_000}, Request: "POST /v1/chat/completions"})
	require.NoError(t, err)
	require.Equal(t, metering.Reserved, r.Status)
	_, err = e.Engine.Settle(e.ctx, r, metering.Outcome{Units: metering.Units{InputTokens: 500_000}, Status: 200})
	require.NoError(t, err)
	e.Drain(t)
	fixed := usageSums{requests: 1, credits: 3 * metering.Micro, awarded: 3 * metering.Micro}
	priced := usageSums{requests: 1, credits: metering.Micro, awarded: metering.Micro}
	requireRows(t, e.admin(t, "GET", "/usage?group_by=model", "").requireStatus(t, http.StatusOK),
		with(fixed, "model", nil), with(priced, "model", "openai/gpt-4o"))
	requireRows(t, e.admin(t, "GET", "/usage?model=openai/gpt-4o", "").requireStatus(t, http.StatusOK), priced.json())
	_, _, body := e.raw(t, "/usage?group_by=model&format=csv")
	require.Equal(t, "model,requests,credits,allowance,pool,awarded,purchased\n,"+fixed.csv()+"\nopenai/gpt-4o,"+priced.csv()+"\n", body)
	e.admin(t, "GET", "/usage?model=a%20b", "").requireError(t, http.StatusBadRequest, "invalid_argument", "model")
}
