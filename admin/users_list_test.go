package admin_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// listAll pages through GET /users?query with the given limit and returns
// the usernames in order, checking every page's shape on the way.
func (e *env) listAll(t *testing.T, query string, limit int) []string {
	t.Helper()
	var names []string
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 100, "pagination does not end")
		v, err := url.ParseQuery(query)
		require.NoError(t, err)
		v.Set("limit", strconv.Itoa(limit))
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		r := e.do(t, "GET", base+"/users?"+v.Encode(), viewerSecret, "").requireStatus(t, http.StatusOK)
		users := r.body["users"].([]any)
		require.LessOrEqual(t, len(users), limit)
		for _, u := range users {
			names = append(names, requireKeys(t, u, userKeys...)["username"].(string))
		}
		next, ok := r.body["next_cursor"]
		if !ok {
			return names
		}
		require.Len(t, users, limit, "only the last page is short")
		cursor = next.(string)
	}
}

func TestListUsersFilters(t *testing.T) {
	t.Parallel()
	clock := meteringtest.NewClock(time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC))
	e := setupWith(t, meteringtest.Options{Clock: clock})
	e.admin(t, "POST", "/projects", `{"name":"p1","allowance":{"amount":5,"period":"daily"}}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/projects", `{"name":"p2"}`).requireStatus(t, http.StatusCreated)
	keys := map[string]string{}
	for _, body := range []string{
		`{"username":"ann","project":"p1","initial_credits":50}`,
		`{"username":"bob","project":"p1","initial_credits":10}`,
		`{"username":"carl","project":"p2","initial_credits":30}`,
		`{"username":"dave","initial_credits":20,"purchased":10}`,
		`{"username":"eve"}`,
		`{"username":"x_y"}`,
		`{"username":"xzy"}`,
	} {
		r := e.admin(t, "POST", "/users", body).requireStatus(t, http.StatusCreated)
		keys[r.body["user"].(map[string]any)["username"].(string)] = r.body["api_key"].(string)
	}
	e.admin(t, "POST", "/users/eve/deactivate", "").requireStatus(t, http.StatusOK)

	// Activity: carl, then ann a second later.
	require.Equal(t, metering.Charged, e.charge(t, keys["carl"], 1).Status)
	clock.Advance(time.Second)
	require.Equal(t, metering.Charged, e.charge(t, keys["ann"], 6).Status) // 5 allowance + 1 awarded
	e.Drain(t)

	for query, want := range map[string][]string{
		"":                       {"ann", "bob", "carl", "dave", "eve", "x_y", "xzy"},
		"search=a":               {"ann", "carl", "dave"},
		"search=AN":              {"ann"},
		"search=x_y":             {"x_y"}, // "_" is not a wildcard
		"project=p1":             {"ann", "bob"},
		"project=none":           {"dave", "eve", "x_y", "xzy"},
		"project=unknown":        nil,
		"status=inactive":        {"eve"},
		"status=active&search=e": {"dave"},
		"sort=username":          {"ann", "bob", "carl", "dave", "eve", "x_y", "xzy"},
		"sort=-credits":          {"ann", "dave", "carl", "bob", "eve", "x_y", "xzy"},
		"sort=-credits&search=x": {"x_y", "xzy"},
		"sort=-activity":         {"ann", "carl", "bob", "dave", "eve", "x_y", "xzy"},
		"sort=-activity&status=active&project=none":       {"dave", "x_y", "xzy"},
		"project=p1&sort=-credits&status=active&search=b": {"bob"},
	} {
		for _, limit := range []int{1, 2, 1000} {
			require.Equal(t, want, e.listAll(t, query, limit), "%s (limit %d)", query, limit)
		}
	}

	// Balances are live: ann's allowance and awarded spend show before the
	// ledger or a refill catches up; a new day's allowance shows at once.
	r := e.admin(t, "GET", "/users?search=ann", "").requireStatus(t, http.StatusOK)
	ann := r.body["users"].([]any)[0].(map[string]any)
	require.Equal(t, num("49"), ann["effective_credits"])
	require.Equal(t, num("0"), ann["allowance_remaining"])
	clock.Advance(24 * time.Hour)
	r = e.admin(t, "GET", "/users?project=p1&sort=-credits", "").requireStatus(t, http.StatusOK)
	ann = r.body["users"].([]any)[0].(map[string]any)
	require.Equal(t, "ann", ann["username"])
	require.Equal(t, num("54"), ann["effective_credits"])

	// Bad values: 400 naming the field.
	r = e.admin(t, "GET", "/users?sort=-credits&limit=1", "").requireStatus(t, http.StatusOK)
	creditsCursor := r.body["next_cursor"].(string)
	for query, field := range map[string]string{
		"sort=credits":                           "sort",
		"sort=":                                  "sort",
		"sort=username&sort=-credits":            "sort",
		"status=gone":                            "status",
		"status=":                                "status",
		"project=Bad!":                           "project",
		"project=":                               "project",
		"search=a%20b":                           "search",
		"cursor=" + creditsCursor:                "cursor", // another sort's cursor
		"sort=-activity&cursor=" + creditsCursor: "cursor",
		"limit=1001":                             "limit",
	} {
		e.admin(t, "GET", "/users?"+query, "").requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	e.admin(t, "GET", "/users?sort=-credits&cursor="+creditsCursor, "").requireStatus(t, http.StatusOK)
}
