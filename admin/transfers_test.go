package admin_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTransfer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"teach"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10,"purchased":5}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"bob","project":"teach"}`).requireStatus(t, http.StatusCreated)

	r := e.admin(t, "POST", "/transfers", `{"from":"ann","to":"bob","amount":2.5,"note":"for the trip"}`).requireStatus(t, http.StatusOK)
	requireKeys(t, r.body, "from", "to")
	from := requireKeys(t, r.body["from"], userKeys...)
	to := requireKeys(t, r.body["to"], userKeys...)
	require.Equal(t, "ann", from["username"])
	require.Equal(t, num("7.5"), from["awarded"])
	require.Equal(t, num("5"), from["purchased"], "only awarded credits move")
	require.Equal(t, "bob", to["username"])
	require.Equal(t, num("2.5"), to["awarded"])

	// Both events are in the ledger before the answer, with actor and note,
	// and so are the audit entries.
	rows, err := e.DB.Query(e.ctx, `SELECT username, coalesce(project_name, ''), d_awarded, actor, note FROM events WHERE kind = 'transfer' ORDER BY d_awarded`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var user, project, actor, note string
		var d int64
		require.NoError(t, rows.Scan(&user, &project, &d, &actor, &note))
		got = append(got, fmt.Sprintf("%s|%s|%d|%s|%s", user, project, d, actor, note))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"ann||-2500000|ops|for the trip", "bob|teach|2500000|ops|for the trip"}, got)
	var awarded int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT awarded FROM users WHERE username = 'bob'`).Scan(&awarded))
	require.Equal(t, int64(2_500_000), awarded)
	r = e.admin(t, "GET", "/audit?user=bob", "").requireStatus(t, http.StatusOK)
	entry := requireKeys(t, r.body["entries"].([]any)[0], "at", "actor", "action", "target", "details")
	require.Equal(t, "transfer.in", entry["action"])
	require.Equal(t, "ops", entry["actor"])
	require.Equal(t, map[string]any{"from": "ann", "to": "bob", "amount": num("2.5"), "note": "for the trip"}, entry["details"])
	r = e.admin(t, "GET", "/audit?user=ann&limit=1", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "transfer.out", r.body["entries"].([]any)[0].(map[string]any)["action"])

	// Not enough awarded credits (purchased do not count): 409, nothing moves.
	events, audits := e.countRows(t, "events"), e.countRows(t, "audit_log")
	e.admin(t, "POST", "/transfers", `{"from":"ann","to":"bob","amount":7.500001}`).requireError(t, http.StatusConflict, "conflict", "")
	e.admin(t, "POST", "/transfers", `{"from":"nobody","to":"bob","amount":1}`).requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "POST", "/transfers", `{"from":"ann","to":"nobody","amount":1}`).requireError(t, http.StatusNotFound, "not_found", "")
	for body, field := range map[string]string{
		`{"from":"ann","to":"ann","amount":1}`:          "to",
		`{"to":"bob","amount":1}`:                       "from",
		`{"from":"ann","amount":1}`:                     "to",
		`{"from":"ann","to":"bob"}`:                     "amount",
		`{"from":"ann","to":"bob","amount":0}`:          "amount",
		`{"from":"ann","to":"bob","amount":-1}`:         "amount",
		`{"from":"ann","to":"bob","amount":0.0000001}`:  "amount",
		`{"from":"ann","to":"bob","amount":"1"}`:        "amount",
		`{"from":"ann","to":"bob","amount":1e20}`:       "amount",
		`{"from":"Ann","to":"bob","amount":1}`:          "from",
		`{"from":"ann","to":"bob","amount":1,"x":1}`:    "x",
		`{"from":"ann","to":"bob","amount":1,"note":5}`: "note",
	} {
		e.admin(t, "POST", "/transfers", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	e.do(t, "POST", base+"/transfers", viewerSecret, `{"from":"ann","to":"bob","amount":1}`).requireError(t, http.StatusForbidden, "forbidden", "")
	require.Equal(t, events, e.countRows(t, "events"))
	require.Equal(t, audits, e.countRows(t, "audit_log"))
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("7.5"), r.body["awarded"])

	e.Drain(t)
	e.AssertConsistent(t)
}

// TestTransferRace: concurrent transfers racing on one balance never
// overdraw it; each success has both its events in the ledger.
func TestTransferRace(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"bob","initial_credits":3}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"cid"}`).requireStatus(t, http.StatusCreated)

	// 40 transfers of 1 out of ann (10) and 10 of 1 from bob back to ann.
	type result struct {
		from   string
		status int
	}
	results := make(chan result, 50)
	var wg sync.WaitGroup
	send := func(from, to string) {
		defer wg.Done()
		r := e.admin(t, "POST", "/transfers", fmt.Sprintf(`{"from":%q,"to":%q,"amount":1}`, from, to))
		results <- result{from, r.status}
	}
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go send("ann", []string{"bob", "cid"}[i%2])
	}
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go send("bob", "ann")
	}
	wg.Wait()
	close(results)
	ok := map[string]int{}
	for r := range results {
		require.Contains(t, []int{http.StatusOK, http.StatusConflict}, r.status)
		if r.status == http.StatusOK {
			ok[r.from]++
		}
	}
	var balances [3]int64
	for i, name := range []string{"ann", "bob", "cid"} {
		r := e.admin(t, "GET", "/users/"+name, "").requireStatus(t, http.StatusOK)
		v, err := r.body["awarded"].(interface{ Int64() (int64, error) }).Int64()
		require.NoError(t, err)
		require.GreaterOrEqual(t, v, int64(0))
		balances[i] = v
	}
	require.Equal(t, int64(13), balances[0]+balances[1]+balances[2], "credits are neither made nor lost")
	require.Equal(t, int64(10+ok["bob"]-ok["ann"]), balances[0])
	require.GreaterOrEqual(t, ok["ann"], 10, "ann's 10 credits all moved")

	var n, sum int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*), coalesce(sum(d_awarded), 0) FROM events WHERE kind = 'transfer'`).Scan(&n, &sum))
	require.Equal(t, int64(2*(ok["ann"]+ok["bob"])), n, "two events per transfer, before the answers")
	require.Zero(t, sum)
	e.Drain(t)
	e.AssertConsistent(t)
}
