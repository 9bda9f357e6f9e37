package browser

import (
	"net/http"
	"strings"
	"testing"
)

// An invite link made on the user page is claimed once, without a
// session: the claimant presses the button and sees a working key; the
// link then answers 410.
func TestInviteClaim(t *testing.T) {
	name := uniqueName("invited")
	old := createUser(t, map[string]any{"username": name, "initial_credits": 10})
	p := openUser(t, name)
	p.need("#invites")
	p.need("#invite-form")
	p.click("#create-invite")
	link := p.text("#invite-url")
	base := theWorld(t).stack.main.URL
	if !strings.HasPrefix(link, base+"/claim/") {
		t.Fatalf("#invite-url is %q, want a link under %s/claim/", link, base)
	}

	// The claimant: another browser context, no session.
	c := newPage(t)
	path := strings.TrimPrefix(link, base)
	if status := c.goTo(path); status != http.StatusOK {
		t.Fatalf("opening the invite link answered HTTP %d", status)
	}
	if c.has("#api-key") {
		t.Fatal("opening the link showed a key before the button was pressed")
	}
	c.screenshot("claim")
	c.click("#claim-confirm")
	key := c.text("#api-key")
	if !strings.HasPrefix(key, "tg_") {
		t.Fatalf("the claim page shows %q, not a key", key)
	}
	c.screenshot("claim-key")
	if status := metered(t, key); status != http.StatusOK {
		t.Errorf("the claimed key got HTTP %d, want 200", status)
	}
	if key != old && metered(t, old) == http.StatusOK {
		t.Error("claiming made a new key but the old one still works")
	}
	if status := c.goTo(path); status != http.StatusGone {
		t.Errorf("opening the used link again answered HTTP %d, want 410", status)
	}
}
