package console

import (
	"encoding/json"
	"net/http"
	"net/url"
)

func (c *Console) pricePages() []page {
	return []page{
		{method: "GET", path: "/prices", h: c.priceList},
		{method: "POST", path: "/prices", h: c.priceSet, write: true},
		{method: "POST", path: "/prices/delete", h: c.priceDelete, write: true},
	}
}

// price is a Price of the API.
type price struct {
	Model            string      `json:"model"`
	InputPerMillion  json.Number `json:"input_per_million"`
	OutputPerMillion json.Number `json:"output_per_million"`
	PerCharacter     json.Number `json:"per_character"`
	PerSecond        json.Number `json:"per_second"`
	PerImage         json.Number `json:"per_image"`
	PerRequest       json.Number `json:"per_request"`
	UpdatedAt        string      `json:"updated_at"`
}

// priceRates are the rate fields of a price, in the order the form shows them.
var priceRates = []string{"input_per_million", "output_per_million", "per_character", "per_second", "per_image", "per_request"}

type pricesData struct {
	Prices []price
	Rates  []string
	Form   *formState
}

func (c *Console) priceList(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.renderPrices(w, r, s, http.StatusOK, nil)
}

func (c *Console) renderPrices(w http.ResponseWriter, r *http.Request, s *session, status int, form *formState) error {
	var out struct {
		Prices []price `json:"prices"`
	}
	if err := c.call(r, s, http.MethodGet, "/prices", nil, nil, &out); err != nil {
		return err
	}
	c.render(w, r, s, status, "prices", "page.prices", pricesData{Prices: out.Prices, Rates: priceRates, Form: form})
	return nil
}

// priceSet: the "set price" form → PUT /prices/{model}. Empty rates are 0,
// as in the API.
func (c *Console) priceSet(w http.ResponseWriter, r *http.Request, s *session) error {
	model := r.PostFormValue("model")
	body := map[string]any{}
	for _, f := range priceRates {
		credits(body, f, r.PostFormValue(f))
	}
	if err := c.call(r, s, http.MethodPut, "/prices/"+modelPath(model), nil, body, nil); err != nil {
		form, status, err := refused(err, "set", r)
		if err != nil {
			return err
		}
		return c.renderPrices(w, r, s, status, form)
	}
	c.redirect(w, r, s, "/prices", c.localizerFor(r, s).T("prices.saved", model))
	return nil
}

func (c *Console) priceDelete(w http.ResponseWriter, r *http.Request, s *session) error {
	model := r.PostFormValue("model")
	if err := c.call(r, s, http.MethodDelete, "/prices/"+modelPath(model), nil, nil, nil); err != nil {
		return err
	}
	c.redirect(w, r, s, "/prices", c.localizerFor(r, s).T("prices.deleted", model))
	return nil
}

// modelPath escapes a model name for the API path, keeping its "/"
// separators as the API expects them (openai/gpt-4o).
func modelPath(model string) string {
	return (&url.URL{Path: model}).EscapedPath()
}
