package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestErrorMessagesAreSentences provokes every kind of error the admin API
// answers, the two reported ones first ("...: conflict", "1 requests"), and
// checks each message exactly where its wording matters and, through
// requireError, that every one reads as a sentence.
func TestErrorMessagesAreSentences(t *testing.T) {
	t.Parallel()
	e := setup(t)
	message := func(r *response) string { return r.body["error"].(map[string]any)["message"].(string) }
	e.admin(t, "POST", "/projects", `{"name":"p1","pool":{"enabled":true,"balance":5}}`).requireStatus(t, http.StatusCreated)
	key := e.createUserKey(t, `{"username":"ann","project":"p1","initial_credits":1}`)
	e.createUserKey(t, `{"username":"bob"}`)

	// One request in flight, one user in the project: singular nouns.
	res, err := e.Engine.ChargeTracked(e.ctx, key, metering.Micro, "POST /slow", time.Minute)
	require.NoError(t, err)
	r := e.admin(t, "DELETE", "/users/ann", "")
	r.requireError(t, http.StatusConflict, "conflict", "")
	require.Equal(t, `User "ann" has 1 request in flight; try again when it is done.`, message(r))
	r = e.admin(t, "DELETE", "/projects/p1", "")
	r.requireError(t, http.StatusConflict, "conflict", "")
	require.Equal(t, `Project "p1" has 1 user; move or delete it first.`, message(r))
	e.Engine.Release(res.Lease)

	for _, c := range []struct {
		method, path, body string
		status             int
		code, field, want  string // want: the exact message, "" to check the form only
	}{
		{"POST", "/projects", `{"name":"p1"}`, 409, "conflict", "", `A project named "p1" already exists.`},
		{"POST", "/users", `{"username":"bob"}`, 409, "conflict", "", `The username "bob" is taken by another user.`},
		{"PATCH", "/users/bob", `{"username":"ann"}`, 409, "conflict", "", `The username "ann" is taken by another user.`},
		{"GET", "/users/nobody", "", 404, "not_found", "", `There is no user named "nobody".`},
		{"GET", "/projects/nowhere", "", 404, "not_found", "", `There is no project named "nowhere".`},
		{"POST", "/projects/nowhere/pool", `{"delta":1}`, 404, "not_found", "", `There is no project named "nowhere".`},
		{"GET", "/prices/m9", "", 404, "not_found", "", `Model "m9" has no price.`},
		{"DELETE", "/prices/m9", "", 404, "not_found", "", `Model "m9" has no price.`},
		{"GET", "/users/bob/key", "", 409, "reveal_disabled", "", "Keys cannot be revealed: no key_encryption_key is configured."},
		{"POST", "/users/bob/credits", `{"delta":-2}`, 409, "conflict", "",
			`The awarded balance of user "bob" is 0; a change of -2 would take it below zero.`},
		{"POST", "/users/bob/credits", `{"delta":-2,"bucket":"purchased"}`, 409, "conflict", "",
			`The purchased balance of user "bob" is 0; a change of -2 would take it below zero.`},
		// ann's request in flight took 1 of the pool's 5.
		{"POST", "/projects/p1/pool", `{"delta":-9}`, 409, "conflict", "",
			`The pool balance of project "p1" is 4; a change of -9 would take it below zero.`},
		{"POST", "/transfers", `{"from":"bob","to":"ann","amount":3}`, 409, "conflict", "",
			`The awarded balance of user "bob" is 0, less than the 3 to transfer.`},
		{"POST", "/transfers", `{"from":"bob","to":"nobody","amount":3}`, 404, "not_found", "", `There is no user named "nobody".`},
		{"POST", "/transfers", `{"from":"bob","to":"bob","amount":3}`, 400, "invalid_argument", "to", "to must be another user than from."},
		{"POST", "/users", `{"username":"Ann Lee"}`, 400, "invalid_argument", "username",
			`The username "Ann Lee" contains the upper-case letter "A"; it must be lower case.`},
		{"POST", "/users", `{"username":"ann lee"}`, 400, "invalid_argument", "username",
			`The username "ann lee" contains a space; only lower-case letters a-z, digits 0-9, ".", "_" and "-" are allowed.`},
		{"POST", "/projects", `{"name":".x"}`, 400, "invalid_argument", "name",
			`The project name ".x" starts with "."; it must start with a letter or a digit.`},
		{"PUT", "/prices/bad%20model", `{}`, 400, "invalid_argument", "model", ""},
		{"POST", "/users", `{"username":"zed","project":"nowhere"}`, 400, "invalid_argument", "project", `There is no project named "nowhere".`},
		{"POST", "/users", `{}`, 400, "invalid_argument", "username", "username is required."},
		{"POST", "/users", `{"username":"zed","x":1}`, 400, "invalid_argument", "x", "x is not a field of this request."},
		{"POST", "/users", `{"username":5}`, 400, "invalid_argument", "username", "username must be a string, not a JSON number."},
		{"POST", "/users", `{"username":"zed"} {}`, 400, "invalid_argument", "", "The request body must hold a single JSON object."},
		{"POST", "/users", `{"username":`, 400, "invalid_argument", "", "The request body is truncated JSON."},
		{"POST", "/users", `{"username" "x"}`, 400, "invalid_argument", "", ""},
		{"POST", "/users", `[]`, 400, "invalid_argument", "", "The request body must be a JSON object, not a JSON array."},
		{"POST", "/users", `{"username":"zed","initial_credits":1.0000001}`, 400, "invalid_argument", "initial_credits", ""},
		{"POST", "/users", `{"username":"zed","initial_credits":"1"}`, 400, "invalid_argument", "initial_credits", ""},
		{"POST", "/users", `{"username":"zed","initial_credits":1e300}`, 400, "invalid_argument", "initial_credits", ""},
		{"POST", "/users", `{"username":"zed","key_expires_at":"tomorrow"}`, 400, "invalid_argument", "key_expires_at", ""},
		{"POST", "/users", `{"username":"zed","key_expires_at":"2000-01-01T00:00:00Z"}`, 400, "invalid_argument", "key_expires_at", ""},
		{"POST", "/users/bob/credits", `{"delta":0}`, 400, "invalid_argument", "delta", "delta must not be zero."},
		{"POST", "/users/bob/credits", `{"delta":9007199254.740991}`, 200, "", "", ""},
		{"POST", "/users/bob/credits", `{"delta":1}`, 400, "invalid_argument", "delta", ""},
		{"POST", "/users/bob/credits", `{"delta":1,"bucket":"pool"}`, 400, "invalid_argument", "bucket", ""},
		{"POST", "/users/bob/credits", `{"delta":1,"note":"a\u0000b"}`, 400, "invalid_argument", "note", ""},
		{"PATCH", "/projects/p1", `{"allowance":{"period":"hourly"}}`, 400, "invalid_argument", "allowance.period", ""},
		{"PATCH", "/projects/p1", `{"allowance":{"timezone":"Mars/Base"}}`, 400, "invalid_argument", "allowance.timezone", ""},
		{"PATCH", "/projects/p1", `{"allowance":{"timezone":"Local"}}`, 400, "invalid_argument", "allowance.timezone", ""},
		{"PATCH", "/projects/p1", `{"pool":{"balance":5}}`, 400, "invalid_argument", "pool.balance", ""},
		{"PATCH", "/projects/p1", `{"allowance":{"amount":null}}`, 400, "invalid_argument", "allowance.amount", ""},
		{"POST", "/projects", `{"name":"p2","allowance":{"amount":-1}}`, 400, "invalid_argument", "allowance.amount", ""},
		{"PATCH", "/users/bob", `{"partner":"yes"}`, 400, "invalid_argument", "partner", ""},
		{"PATCH", "/users/bob", `{"key_expires_at":5}`, 400, "invalid_argument", "key_expires_at", ""},
		{"PATCH", "/users/bob", `{"project":""}`, 400, "invalid_argument", "project", ""},
		{"PUT", "/prices/m1", `{"per_request":-1}`, 400, "invalid_argument", "per_request", ""},
		{"PUT", "/prices/m1", `{"model":"m1"}`, 400, "invalid_argument", "model", ""},
		{"GET", "/users?limit=0", "", 400, "invalid_argument", "limit", "limit must be a whole number from 1 to 1000."},
		{"GET", "/users?cursor=zzz", "", 400, "invalid_argument", "cursor", ""},
		{"GET", "/users?status=gone", "", 400, "invalid_argument", "status", ""},
		{"GET", "/audit?limit=x", "", 400, "invalid_argument", "limit", ""},
		{"GET", "/audit?cursor=x", "", 400, "invalid_argument", "cursor", ""},
		{"GET", "/audit?from=yesterday", "", 400, "invalid_argument", "from", ""},
		{"GET", "/dead-letters?cursor=x", "", 400, "invalid_argument", "cursor", ""},
		{"GET", "/usage?group_by=week", "", 400, "invalid_argument", "group_by", ""},
		{"GET", "/usage?format=xml", "", 400, "invalid_argument", "format", ""},
		{"GET", "/usage?user=Bad!", "", 400, "invalid_argument", "user", ""},
		{"GET", "/usage?from=2026-03-02&to=2026-03-01", "", 400, "invalid_argument", "to", ""},
		{"GET", "/nowhere", "", 404, "not_found", "", "There is no route GET /admin/v1/nowhere."},
		{"PUT", "/users", "{}", 405, "method_not_allowed", "", ""},
	} {
		r := e.admin(t, c.method, c.path, c.body)
		if c.status == 200 {
			r.requireStatus(t, 200)
			continue
		}
		r.requireError(t, c.status, c.code, c.field)
		if c.want != "" {
			require.Equal(t, c.want, message(r), "%s %s", c.method, c.path)
		}
	}

	// Without a token, with a viewer's, and a body too large.
	r = e.do(t, "GET", base+"/users", "", "")
	r.requireError(t, http.StatusUnauthorized, "unauthenticated", "")
	r = e.do(t, "POST", base+"/users", viewerSecret, `{"username":"zed"}`)
	r.requireError(t, http.StatusForbidden, "forbidden", "")
	require.Equal(t, `Token "reports" has the viewer role, which may only read.`, message(r))
	r = e.admin(t, "POST", "/users", `{"username":"`+strings.Repeat("a", 2<<20)+`"}`)
	r.requireError(t, http.StatusRequestEntityTooLarge, "too_large", "")
}
