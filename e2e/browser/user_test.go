package browser

import (
	"net/http"
	"strings"
	"testing"
)

// openUser signs in as admin and opens a user's page.
func openUser(t *testing.T, name string) *page {
	t.Helper()
	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/users/" + name)
	p.need("#balances")
	return p
}

// Adding credits changes #balances and the API; a withdrawal larger than
// the bucket shows the API's sentence.
func TestUserCredits(t *testing.T) {
	name := uniqueName("credits")
	createUser(t, map[string]any{"username": name, "initial_credits": 10})
	p := openUser(t, name)
	p.need("#effective-credits")
	before := p.text("#balances")
	if !strings.Contains(p.text("#effective-credits"), "10") {
		t.Errorf("#effective-credits shows %q, want 10", p.text("#effective-credits"))
	}
	p.need("#invites") // the lead's placeholder
	p.screenshot("user")

	f := "#credits-form "
	p.fill(f+`[name="delta"]`, "5,5")
	p.fill(f+`select[name="bucket"]`, "purchased")
	p.fill(f+`[name="note"]`, "browser top-up")
	p.click("#credits-submit")
	p.need("#flash")
	if after := p.text("#balances"); after == before || !strings.Contains(p.text("#effective-credits"), "15") {
		t.Errorf("#balances did not change to 15.5 effective: before %q, after %q", before, after)
	}
	if u := getUser(t, name); u.Purchased.String() != "5.5" || u.Awarded.String() != "10" {
		t.Errorf("the API has awarded %s, purchased %s; want 10 and 5.5", u.Awarded, u.Purchased)
	}

	body := map[string]any{"delta": -100, "bucket": "awarded"}
	_, sentence := apiRefusal(t, "POST", "/users/"+name+"/credits", body)
	p.fill(f+`[name="delta"]`, "-100")
	p.fill(f+`select[name="bucket"]`, "awarded")
	if status := p.click("#credits-submit"); status != http.StatusConflict {
		t.Errorf("withdrawing more than the bucket holds answered HTTP %d, want 409", status)
	}
	if msg := p.text("#form-error"); msg != sentence {
		t.Errorf("#form-error says %q, want the API's sentence %q", msg, sentence)
	}
}

// A transfer moves awarded credits to another user.
func TestUserTransfer(t *testing.T) {
	from, to := uniqueName("giver"), uniqueName("taker")
	createUser(t, map[string]any{"username": from, "initial_credits": 10})
	createUser(t, map[string]any{"username": to})
	p := openUser(t, from)
	f := "#transfer-form "
	p.fill(f+`[name="to"]`, to)
	p.fill(f+`[name="amount"]`, "3")
	p.fill(f+`[name="note"]`, "browser transfer")
	p.click("#transfer-submit")
	p.need("#flash")
	if a, b := getUser(t, from), getUser(t, to); a.Awarded.String() != "7" || b.Awarded.String() != "3" {
		t.Errorf("after the transfer %s has %s and %s has %s awarded, want 7 and 3", from, a.Awarded, to, b.Awarded)
	}
}

// View the key through its confirmation page, then rotate it: the new
// key works, the old one is refused by the gateway.
func TestViewAndRotateKey(t *testing.T) {
	name := uniqueName("keyed")
	key := createUser(t, map[string]any{"username": name, "initial_credits": 10})
	p := openUser(t, name)

	p.click("#view-key")
	if got := p.path(); got != "/admin/users/"+name+"/key" {
		t.Errorf("#view-key led to %s, want the confirmation page /admin/users/%s/key", got, name)
	}
	p.need("#reveal-form")
	if p.has("#api-key") {
		t.Fatal("the confirmation page already shows the key")
	}
	p.click("#reveal-confirm")
	if shown := p.text("#api-key"); shown != key {
		t.Errorf("#api-key shows %q, want the user's key", shown)
	}
	if strings.Contains(p.path(), key[3:]) {
		t.Errorf("the key is in the URL %s", p.path())
	}
	p.screenshot("view-key")

	p.goTo("/admin/users/" + name)
	p.click("#rotate-key")
	if got := p.path(); got != "/admin/users/"+name+"/rotate" {
		t.Errorf("#rotate-key led to %s, want the confirmation page /admin/users/%s/rotate", got, name)
	}
	p.need("#rotate-form")
	p.click("#rotate-confirm")
	rotated := p.text("#api-key")
	if !strings.HasPrefix(rotated, "tg_") || rotated == key {
		t.Fatalf("after rotating #api-key shows %q, want a new key", rotated)
	}
	if status := metered(t, key); status != http.StatusUnauthorized {
		t.Errorf("the old key got HTTP %d after the rotation, want 401", status)
	}
	if status := metered(t, rotated); status != http.StatusOK {
		t.Errorf("the new key got HTTP %d, want 200", status)
	}
}

// Deactivating stops the key at once, activating brings it back.
func TestDeactivateActivate(t *testing.T) {
	name := uniqueName("switched")
	key := createUser(t, map[string]any{"username": name, "initial_credits": 10})
	p := openUser(t, name)
	p.click("#deactivate")
	if u := getUser(t, name); u.Status != "inactive" {
		t.Fatalf("after #deactivate the user is %s", u.Status)
	}
	if status := metered(t, key); status == http.StatusOK {
		t.Error("a deactivated user's key still gets 200")
	}
	p.goTo("/admin/users/" + name)
	p.need("#activate-form")
	p.click("#activate")
	if u := getUser(t, name); u.Status != "active" {
		t.Fatalf("after #activate the user is %s", u.Status)
	}
	if status := metered(t, key); status != http.StatusOK {
		t.Errorf("the reactivated key got HTTP %d, want 200", status)
	}
}

// Deleting goes through a confirmation page.
func TestDeleteUser(t *testing.T) {
	name := uniqueName("doomed")
	createUser(t, map[string]any{"username": name})
	p := openUser(t, name)
	p.click("#delete-user")
	if got := p.path(); got != "/admin/users/"+name+"/delete" {
		t.Errorf("#delete-user led to %s, want the confirmation page /admin/users/%s/delete", got, name)
	}
	if got := api(t, "GET", "/users/"+name, nil, nil); got != http.StatusOK {
		t.Fatalf("opening the confirmation page deleted the user (GET answers %d)", got)
	}
	p.need("#delete-form")
	p.click("#delete-confirm")
	if got := api(t, "GET", "/users/"+name, nil, nil); got != http.StatusNotFound {
		t.Errorf("after #delete-confirm GET /users/%s answers %d, want 404", name, got)
	}
}

// Editing moves the user to another project; a user with usage cannot
// be renamed, and the form says so by disabling the field.
func TestEditUser(t *testing.T) {
	from, to := uniqueName("editfrom"), uniqueName("editto")
	createProject(t, from, nil)
	createProject(t, to, nil)
	name := uniqueName("edited")
	key := createUser(t, map[string]any{"username": name, "project": from, "initial_credits": 10})
	if status := metered(t, key); status != http.StatusOK {
		t.Fatalf("the user's request got HTTP %d", status)
	}
	waitFor(t, "the user's usage to be recorded", func() bool { return getUser(t, name).HasUsage })
	p := openUser(t, name)
	f := "#edit-user-form "
	if !p.disabled(f + `[name="username"]`) {
		t.Error("the username field is enabled although the user has usage")
	}
	p.fill(f+`select[name="project"]`, to)
	p.click("#save-user")
	if u := getUser(t, name); u.Project == nil || *u.Project != to {
		t.Errorf("after #save-user the user's project is %v, want %s", u.Project, to)
	}
}
