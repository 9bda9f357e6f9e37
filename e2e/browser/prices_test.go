package browser

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Set a price through the form (a German decimal comma included), see it
// in the table and the API; a bad model name shows the API's sentence;
// delete it.
func TestPrices(t *testing.T) {
	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/prices")
	p.need("#prices")

	model := uniqueName("browser-model")
	p.fill("#price-form #model", model)
	p.fill("#price-form #input_per_million", "1,5")
	p.fill("#price-form #per_request", "0.25")
	p.click("#price-save")
	if got := p.path(); got != "/admin/prices" {
		t.Errorf("after saving a price the browser is at %s, want /admin/prices (POST-redirect-GET)", got)
	}
	if flash := p.text("#flash"); !strings.Contains(flash, model) {
		t.Errorf("#flash says %q, want it to name %s", flash, model)
	}
	if table := p.text("#prices"); !strings.Contains(table, model) {
		t.Errorf("#prices does not list %s:\n%s", model, table)
	}
	var pr struct {
		InputPerMillion json.Number `json:"input_per_million"`
		PerRequest      json.Number `json:"per_request"`
	}
	mustAPI(t, http.StatusOK, "GET", "/prices/"+model, nil, &pr)
	if pr.InputPerMillion.String() != "1.5" || pr.PerRequest.String() != "0.25" {
		t.Errorf("the API has input_per_million %s and per_request %s, want 1.5 and 0.25", pr.InputPerMillion, pr.PerRequest)
	}
	p.screenshot("prices")

	// A refusal: the form comes back with the API's sentence and the typed values.
	p.fill("#price-form #model", model)
	p.fill("#price-form #per_request", "-1")
	if status := p.click("#price-save"); status != http.StatusBadRequest {
		t.Errorf("a negative rate answered HTTP %d, want 400", status)
	}
	if msg := p.text("#form-error"); !strings.Contains(msg, "per_request") {
		t.Errorf("#form-error says %q, want the API's sentence naming per_request", msg)
	}
	if v := p.value("#price-form #per_request"); v != "-1" {
		t.Errorf("the refused form lost the typed value: per_request is %q", v)
	}

	p.click(`#prices form:has(input[name="model"][value="` + model + `"]) button[type="submit"]`)
	if flash := p.text("#flash"); !strings.Contains(flash, model) {
		t.Errorf("after deleting, #flash says %q, want it to name %s", flash, model)
	}
	if got := api(t, "GET", "/prices/"+model, nil, nil); got != http.StatusNotFound {
		t.Errorf("after deleting, GET /prices/%s is HTTP %d, want 404", model, got)
	}
}
