package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/metering"
)

// inviteClockStart is the injected clock's start: expiry is tested by
// moving the clock, never by waiting.
var inviteClockStart = time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)

// createInvite creates an invite for username through the API and returns
// its id and token.
func (e *env) createInvite(t *testing.T, username, body string) (id, token string) {
	t.Helper()
	r := e.admin(t, "POST", "/users/"+username+"/invite", body).requireStatus(t, http.StatusCreated)
	m := requireKeys(t, r.body, "id", "url", "expires_at")
	url := m["url"].(string)
	i := strings.LastIndex(url, "/claim/")
	require.Greater(t, i, 0, "url %q", url)
	return m["id"].(string), url[i+len("/claim/"):]
}

// claim posts a token to the public claim route, without an admin token.
func (e *env) claim(t *testing.T, token string) *response {
	t.Helper()
	return e.do(t, "POST", base+"/claim", "", `{"token":"`+token+`"}`)
}

func jsonDecode(resp *http.Response, dst any) error { return json.NewDecoder(resp.Body).Decode(dst) }

func TestInviteCreateListClaim(t *testing.T) {
	t.Parallel()
	e := setupAt(t, inviteClockStart)
	oldKey := e.createUserKey(t, `{"username":"ann","initial_credits":10}`)

	r := e.admin(t, "POST", "/users/ann/invite", "").requireStatus(t, http.StatusCreated)
	m := requireKeys(t, r.body, "id", "url", "expires_at")
	id, url := m["id"].(string), m["url"].(string)
	require.Regexp(t, `^[0-9a-f]{32}$`, id)
	// Without public_url, the link is built from the request's scheme and host.
	prefix := e.srv.URL + "/claim/"
	require.True(t, strings.HasPrefix(url, prefix), "url %q", url)
	token := strings.TrimPrefix(url, prefix)
	require.True(t, metering.WellFormedInviteToken(token), "token %q", token)
	require.Equal(t, inviteClockStart.Add(7*24*time.Hour), requireRFC3339(t, m["expires_at"]), "seven days by default")

	// A chosen expiry; the listing is newest first and never shows a token.
	e.Clock.Advance(time.Minute)
	r = e.admin(t, "POST", "/users/ann/invite", `{"expires_at":"2026-03-11T00:00:00Z"}`).requireStatus(t, http.StatusCreated)
	id2 := r.body["id"].(string)
	require.Equal(t, "2026-03-11T00:00:00Z", r.body["expires_at"])
	r = e.do(t, "GET", base+"/users/ann/invites", viewerSecret, "").requireStatus(t, http.StatusOK)
	requireKeys(t, r.body, "invites")
	list := r.body["invites"].([]any)
	require.Len(t, list, 2)
	first := requireKeys(t, list[0], "id", "created_at", "expires_at", "created_by")
	require.Equal(t, id2, first["id"])
	require.Equal(t, "ops", first["created_by"])
	require.Equal(t, inviteClockStart.Add(time.Minute), requireRFC3339(t, first["created_at"]))
	require.Equal(t, id, list[1].(map[string]any)["id"])
	require.NotContains(t, string(r.raw), "tgi_")

	// Only the digest is stored; the audit log has neither token nor link.
	var audited int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE action = 'user.invite.create'
		AND actor = 'ops' AND target = 'ann' AND details->>'invite_id' IN ($1, $2)`, id, id2).Scan(&audited))
	require.Equal(t, 2, audited)
	var leaks int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM audit_log WHERE details::text LIKE '%tgi_%')
		+ (SELECT count(*) FROM invites WHERE token_sha256 LIKE '%tgi_%')`).Scan(&leaks))
	require.Zero(t, leaks)
	r = e.admin(t, "GET", "/audit?user=ann", "").requireStatus(t, http.StatusOK)
	require.NotContains(t, string(r.raw), "tgi_")

	// A check claims nothing and needs no admin token.
	r = e.do(t, "POST", base+"/claim/check", "", `{"token":"`+token+`"}`).requireStatus(t, http.StatusOK)
	requireKeys(t, r.body, "expires_at")
	require.Equal(t, inviteClockStart.Add(7*24*time.Hour), requireRFC3339(t, r.body["expires_at"]))

	// The claim needs no admin token and hands out a fresh key.
	require.Equal(t, metering.Charged, e.charge(t, oldKey, 1).Status)
	r = e.claim(t, token).requireStatus(t, http.StatusOK)
	requireKeys(t, r.body, "username", "api_key")
	require.Equal(t, "ann", r.body["username"])
	newKey := r.body["api_key"].(string)
	require.True(t, metering.WellFormedKey(newKey))
	require.Equal(t, metering.KeyRefused, e.charge(t, oldKey, 1).Status, "the previous key stops working")
	require.Equal(t, metering.Charged, e.charge(t, newKey, 1).Status)

	// Exactly once.
	e.claim(t, token).requireError(t, http.StatusGone, "gone", "")
	e.do(t, "POST", base+"/claim/check", "", `{"token":"`+token+`"}`).requireError(t, http.StatusGone, "gone", "")
	r = e.admin(t, "GET", "/users/ann/invites", "").requireStatus(t, http.StatusOK)
	require.Len(t, r.body["invites"].([]any), 1, "the claimed invite is no longer pending")

	var actor, details string
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT actor, details::text FROM audit_log WHERE action = 'user.invite.claim'
		AND target = 'ann'`).Scan(&actor, &details))
	require.Equal(t, "invite:"+id, actor)
	require.NotContains(t, details, newKey)
	require.Contains(t, details, newKey[:7], "the new key's display prefix is recorded")
	r = e.admin(t, "GET", "/audit?actor=invite:"+id, "").requireStatus(t, http.StatusOK)
	require.Len(t, r.body["entries"].([]any), 1)
}

func TestInviteClaimGoneForEveryReason(t *testing.T) {
	t.Parallel()
	e := setupAt(t, inviteClockStart)
	e.createUserKey(t, `{"username":"ann"}`)
	_, expiring := e.createInvite(t, "ann", `{"expires_at":"2026-03-10T10:00:00Z"}`)
	revokedID, revoked := e.createInvite(t, "ann", "")
	unknown := "tgi_" + strings.Repeat("A", 43)

	// Revocation is for admins; viewers may only read.
	e.do(t, "DELETE", base+"/users/ann/invites/"+revokedID, viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")
	e.admin(t, "DELETE", "/users/ann/invites/"+revokedID, "").requireStatus(t, http.StatusNoContent)
	e.admin(t, "DELETE", "/users/ann/invites/"+revokedID, "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "DELETE", "/users/ann/invites/not-an-id", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "DELETE", "/users/bob/invites/"+revokedID, "").requireError(t, http.StatusNotFound, "not_found", "")
	var revokeAudits int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE action = 'user.invite.revoke'
		AND actor = 'ops' AND details->>'invite_id' = $1`, revokedID).Scan(&revokeAudits))
	require.Equal(t, 1, revokeAudits)

	e.Clock.Advance(30 * time.Minute) // exactly the expiry: no longer claimable
	var message string
	for name, token := range map[string]string{"expired": expiring, "revoked": revoked, "unknown": unknown,
		"malformed": "tgi_short", "a key": e.createUserKey(t, `{"username":"bob"}`)} {
		r := e.claim(t, token)
		r.requireError(t, http.StatusGone, "gone", "")
		msg := r.body["error"].(map[string]any)["message"].(string)
		if message == "" {
			message = msg
		}
		require.Equal(t, message, msg, "%s: one message for every reason", name)
		r = e.do(t, "POST", base+"/claim/check", "", `{"token":"`+token+`"}`)
		r.requireError(t, http.StatusGone, "gone", "")
		require.Equal(t, message, r.body["error"].(map[string]any)["message"], "%s: the check answers alike", name)
	}
	r := e.admin(t, "GET", "/users/ann/invites", "").requireStatus(t, http.StatusOK)
	require.Empty(t, r.body["invites"], "neither the expired nor the revoked invite is pending")
	e.admin(t, "DELETE", "/users/ann/invites/"+revokedID, "").requireError(t, http.StatusNotFound, "not_found", "")
}

func TestInviteRequestChecks(t *testing.T) {
	t.Parallel()
	e := setupAt(t, inviteClockStart)
	e.createUserKey(t, `{"username":"ann"}`)

	e.do(t, "POST", base+"/users/ann/invite", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")
	e.do(t, "GET", base+"/users/ann/invites", "", "").requireError(t, http.StatusUnauthorized, "unauthenticated", "")
	e.admin(t, "POST", "/users/nobody/invite", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "GET", "/users/nobody/invites", "").requireError(t, http.StatusNotFound, "not_found", "")
	for body, field := range map[string]string{
		`{"expires_at":"2026-03-10T09:30:00Z"}`: "expires_at", // now is not the future
		`{"expires_at":"2026-01-01T00:00:00Z"}`: "expires_at",
		`{"expires_at":"2026-06-08T09:30:01Z"}`: "expires_at", // 90 days and a second
		`{"expires_at":"next week"}`:            "expires_at",
		`{"expires_at":7}`:                      "expires_at",
		`{"expire":"2026-03-11T00:00:00Z"}`:     "expire",
		`[]`:                                    "",
		`{`:                                     "",
	} {
		e.admin(t, "POST", "/users/ann/invite", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	e.admin(t, "POST", "/users/ann/invite", `{"expires_at":"2026-06-08T09:30:00Z"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users/ann/invite", `{}`).requireStatus(t, http.StatusCreated)

	for body, field := range map[string]string{`{}`: "token", `{"token":""}`: "token", `{"token":5}`: "token",
		`{"token":"x","more":1}`: "more", `nope`: "", ``: ""} {
		e.do(t, "POST", base+"/claim", "", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
		e.do(t, "POST", base+"/claim/check", "", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	e.do(t, "GET", base+"/claim", "", "").requireError(t, http.StatusMethodNotAllowed, "method_not_allowed", "")

	// A bounded number of pending invites per user.
	for range metering.MaxPendingInvites - 2 {
		e.admin(t, "POST", "/users/ann/invite", "").requireStatus(t, http.StatusCreated)
	}
	e.admin(t, "POST", "/users/ann/invite", "").requireError(t, http.StatusConflict, "conflict", "")
}

func TestInviteFollowsTheUser(t *testing.T) {
	t.Parallel()
	e := setupAt(t, inviteClockStart)
	e.createUserKey(t, `{"username":"ann","initial_credits":10}`)

	// Deactivated: no invite, and a pending one cannot be claimed until
	// the user is activated again.
	_, token := e.createInvite(t, "ann", "")
	e.admin(t, "POST", "/users/ann/deactivate", "").requireStatus(t, http.StatusOK)
	r := e.admin(t, "POST", "/users/ann/invite", "")
	r.requireError(t, http.StatusConflict, "conflict", "")
	require.Equal(t, `User "ann" is deactivated, so the key an invite hands out would not work; activate the user first.`,
		r.body["error"].(map[string]any)["message"])
	e.do(t, "POST", base+"/claim/check", "", `{"token":"`+token+`"}`).requireError(t, http.StatusGone, "gone", "")
	r = e.claim(t, token)
	r.requireError(t, http.StatusGone, "gone", "")
	require.Equal(t, "This invite link is not valid: it was used already, revoked or expired, or never existed.",
		r.body["error"].(map[string]any)["message"])
	e.admin(t, "POST", "/users/ann/activate", "").requireStatus(t, http.StatusOK)

	// A rename keeps the invite: it points at the user, not the name.
	e.admin(t, "PATCH", "/users/ann", `{"username":"anne"}`).requireStatus(t, http.StatusOK)
	r = e.admin(t, "GET", "/users/anne/invites", "").requireStatus(t, http.StatusOK)
	require.Len(t, r.body["invites"].([]any), 1)
	r = e.claim(t, token).requireStatus(t, http.StatusOK)
	require.Equal(t, "anne", r.body["username"])
	require.Equal(t, metering.Charged, e.charge(t, r.body["api_key"].(string), 1).Status)

	// Deleting the user takes its invites along.
	_, token = e.createInvite(t, "anne", "")
	e.admin(t, "DELETE", "/users/anne", "").requireStatus(t, http.StatusNoContent)
	require.Zero(t, e.countRows(t, "invites"))
	e.claim(t, token).requireError(t, http.StatusGone, "gone", "")
}

// Many claims of one token at once: exactly one gets the key.
func TestInviteConcurrentClaimsHaveOneWinner(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.createUserKey(t, `{"username":"ann","initial_credits":10}`)
	_, token := e.createInvite(t, "ann", "")

	const claimants = 8
	statuses := make([]int, claimants)
	keys := make([]string, claimants)
	errs := make([]error, claimants)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range claimants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := e.srv.Client().Post(e.srv.URL+base+"/claim", "application/json",
				strings.NewReader(`{"token":"`+token+`"}`))
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			statuses[i] = resp.StatusCode
			if resp.StatusCode == http.StatusOK {
				var body struct {
					APIKey string `json:"api_key"`
				}
				errs[i] = jsonDecode(resp, &body)
				keys[i] = body.APIKey
			}
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	var key string
	for i := range claimants {
		require.NoError(t, errs[i])
		switch statuses[i] {
		case http.StatusOK:
			winners++
			key = keys[i]
		case http.StatusGone:
		default:
			t.Fatalf("claim %d answered %d", i, statuses[i])
		}
	}
	require.Equal(t, 1, winners)
	require.Equal(t, metering.Charged, e.charge(t, key, 1).Status, "the winner's key is the user's key")
	var claims int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE action = 'user.invite.claim'`).Scan(&claims))
	require.Equal(t, 1, claims)
}

// A claim whose key cannot reach Redis changes nothing: the invite stays
// claimable and the old key keeps working.
func TestInviteClaimThatFailsStaysClaimable(t *testing.T) {
	t.Parallel()
	e := setup(t)
	oldKey := e.createUserKey(t, `{"username":"ann","initial_credits":10}`)
	_, token := e.createInvite(t, "ann", "")

	// An engine over the same Postgres whose Redis does not answer:
	// nothing listens on port 1.
	dead := redisClient("127.0.0.1:1")
	t.Cleanup(func() { dead.Close() })
	eng, err := metering.NewEngine(dead, e.DB, e.Config)
	require.NoError(t, err)
	t.Cleanup(eng.Close)
	core, logs := observer.New(zap.DebugLevel)
	h, err := admin.New(eng, admin.Config{Logger: zap.New(core), Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", base+"/claim", strings.NewReader(`{"token":"`+token+`"}`)))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"code":"unavailable"`)
	require.Contains(t, rec.Body.String(), "was not used")
	require.Equal(t, 1, logs.FilterMessage("invite claim failed").Len())
	e.logs = logs // checked for secrets at cleanup

	require.Equal(t, metering.Charged, e.charge(t, oldKey, 1).Status, "the old key still works")
	r := e.admin(t, "GET", "/users/ann/invites", "").requireStatus(t, http.StatusOK)
	require.Len(t, r.body["invites"].([]any), 1, "the invite is still pending")
	r = e.claim(t, token).requireStatus(t, http.StatusOK)
	require.Equal(t, metering.Charged, e.charge(t, r.body["api_key"].(string), 1).Status)
	require.Equal(t, metering.KeyRefused, e.charge(t, oldKey, 1).Status)
}

func TestInvitePublicURL(t *testing.T) {
	t.Parallel()
	e := setupAt(t, inviteClockStart)
	e.createUserKey(t, `{"username":"ann"}`)
	h, err := admin.New(e.Engine, admin.Config{PublicURL: "https://gw.school.example/ai/", InviteTTL: 48 * time.Hour,
		Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", base+"/users/ann/invite", nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Regexp(t, `"url":"https://gw\.school\.example/ai/claim/tgi_[0-9A-Za-z]{43}"`, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"expires_at":"2026-03-12T09:30:00Z"`, "the configured lifetime")

	// Without public_url, a TLS request gets an https link to its host.
	h, err = admin.New(e.Engine, admin.Config{Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("POST", "https://gw.other.example"+base+"/users/ann/invite", nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"url":"https://gw.other.example/claim/tgi_`)

	for name, cfg := range map[string]admin.Config{
		"relative url": {PublicURL: "gw.example"},
		"ftp url":      {PublicURL: "ftp://gw.example"},
		"query":        {PublicURL: "https://gw.example/?x=1"},
		"user info":    {PublicURL: "https://me:pw@gw.example"},
		"negative ttl": {InviteTTL: -time.Hour},
		"too long ttl": {InviteTTL: 91 * 24 * time.Hour},
		"fragment":     {PublicURL: "https://gw.example/#top"},
	} {
		cfg.Tokens = []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}
		_, err := admin.New(e.Engine, cfg)
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), "pw@", "%s: the URL's password is in the error", name)
	}
}
