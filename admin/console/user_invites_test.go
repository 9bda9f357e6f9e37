package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var inviteURL = regexp.MustCompile(`<code class="secret" id="invite-url">([^<]+)</code>`)

// TestInviteLinkFromUserPageToClaim: an admin makes a link on the user
// page (shown once), it is listed while pending, the person who opens it
// presses the button and sees a fresh key once, the old key stops, and
// the link answers 410 from then on.
func TestInviteLinkFromUserPageToClaim(t *testing.T) {
	e := setup(t)
	oldKey := e.givenUser(t, "ann", "")
	b := e.signedIn(t, adminSecret)

	p := b.submit("/admin/users/ann", "/admin/users/ann/invite", url.Values{"days": {"3"}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, "no-store", p.header.Get("Cache-Control"))
	m := inviteURL.FindStringSubmatch(p.body)
	require.NotNil(t, m, "the new link is shown")
	link, err := url.Parse(m[1])
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(link.Path, "/claim/tgi_"), link.Path)
	require.Equal(t, strings.TrimPrefix(e.srv.URL, "http://"), link.Host, "the link names the site it was made on")

	// Listed while pending, without the link; not shown again.
	again := b.get("/admin/users/ann")
	require.Contains(t, again.body, `id="pending-invites"`)
	require.NotContains(t, again.body, link.Path)
	require.NotContains(t, again.body, `id="invite-url"`)
	invites, err := e.Engine.ListInvites(e.ctx, "ann")
	require.NoError(t, err)
	require.Len(t, invites, 1)
	require.WithinDuration(t, time.Now().Add(72*time.Hour), invites[0].ExpiresAt, time.Hour)

	// The claimant has no session: a fresh browser opens the link.
	claimant := e.browser(t)
	form := claimant.get(link.Path)
	require.Equal(t, http.StatusOK, form.status, form.body)
	require.Contains(t, form.body, `id="claim-confirm"`)
	require.NotContains(t, form.body, "tg_", "opening the link makes no key")
	ok, err := e.Engine.KeyUsable(e.ctx, oldKey)
	require.NoError(t, err)
	require.True(t, ok, "opening the link alone changes nothing")

	// A second person opened the same link (a forwarded mail) before the
	// owner pressed the button.
	latecomer := e.browser(t)
	lateForm := latecomer.get(link.Path)
	require.Equal(t, http.StatusOK, lateForm.status)

	// Without the form's CSRF token, nothing happens.
	require.Equal(t, http.StatusForbidden, claimant.post(link.Path, url.Values{"csrf": {"forged"}}).status)

	claimed := claimant.post(link.Path, url.Values{"csrf": {form.csrf(t)}})
	require.Equal(t, http.StatusOK, claimed.status, claimed.body)
	require.Equal(t, "no-store", claimed.header.Get("Cache-Control"))
	km := shownKey.FindStringSubmatch(claimed.body)
	require.NotNil(t, km, "the key is shown")
	newKey := km[1]
	ok, err = e.Engine.KeyUsable(e.ctx, newKey)
	require.NoError(t, err)
	require.True(t, ok, "the claimed key works")
	ok, err = e.Engine.KeyUsable(e.ctx, oldKey)
	require.NoError(t, err)
	require.False(t, ok, "the previous key stops")
	require.Contains(t, claimed.body, e.srv.URL+"/v1", "the instructions name the gateway")

	// Spent: the link answers 410, to GET and POST alike.
	gone := e.browser(t).get(link.Path)
	require.Equal(t, http.StatusGone, gone.status)
	require.Contains(t, gone.body, "no longer valid")
	late := latecomer.post(link.Path, url.Values{"csrf": {lateForm.csrf(t)}})
	require.Equal(t, http.StatusGone, late.status, "the link works once")
	require.NotContains(t, late.body, "tg_")
	require.NotContains(t, b.get("/admin/users/ann").body, `id="pending-invites"`)
}

func TestInviteLinkWithdrawnAndRefusedForViewers(t *testing.T) {
	e := setup(t)
	e.givenUser(t, "ann", "")
	b := e.signedIn(t, adminSecret)
	p := b.submit("/admin/users/ann", "/admin/users/ann/invite", nil)
	link := inviteURL.FindStringSubmatch(p.body)[1]
	invites, err := e.Engine.ListInvites(e.ctx, "ann")
	require.NoError(t, err)
	require.Len(t, invites, 1)

	v := e.signedIn(t, viewerSecret)
	vp := v.get("/admin/users/ann")
	require.Contains(t, vp.body, `id="pending-invites"`, "a viewer sees the pending links")
	require.NotContains(t, vp.body, `id="invite-form"`)
	require.NotContains(t, vp.body, "/revoke")
	require.Equal(t, http.StatusForbidden, v.post("/admin/users/ann/invite", url.Values{"csrf": {vp.csrf(t)}}).status)
	require.Equal(t, http.StatusForbidden,
		v.post("/admin/users/ann/invites/"+invites[0].ID+"/revoke", url.Values{"csrf": {vp.csrf(t)}}).status)

	b.submit("/admin/users/ann", "/admin/users/ann/invites/"+invites[0].ID+"/revoke", nil).
		requireSeeOther(t, "/admin/users/ann")
	require.Contains(t, b.get("/admin/users/ann").body, `id="no-invites"`)
	u, err := url.Parse(link)
	require.NoError(t, err)
	require.Equal(t, http.StatusGone, e.browser(t).get(u.Path).status, "a withdrawn link is spent")

	// A bad validity is the console's own sentence; a too long one the API's.
	p = b.submit("/admin/users/ann", "/admin/users/ann/invite", url.Values{"days": {"soon"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "whole number of days")
	p = b.submit("/admin/users/ann", "/admin/users/ann/invite", url.Values{"days": {"400"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, `id="form-error"`)
	require.Contains(t, p.body, `value="400"`, "what was typed stays")
}
