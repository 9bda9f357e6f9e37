package admin

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// Model names may hold slashes ("openai/gpt-4o"), so the wildcard takes
// the rest of the path.
func (a *api) priceRoutes() []route {
	return []route{
		{method: "GET", path: "/prices", h: a.listPrices},
		{method: "GET", path: "/prices/{model...}", h: a.getPrice},
		{method: "PUT", path: "/prices/{model...}", h: a.putPrice},
		{method: "DELETE", path: "/prices/{model...}", h: a.deletePrice},
	}
}

// priceJSON is the Price object of the contract.
type priceJSON struct {
	Model            string           `json:"model"`
	InputPerMillion  metering.Credits `json:"input_per_million"`
	OutputPerMillion metering.Credits `json:"output_per_million"`
	PerCharacter     metering.Credits `json:"per_character"`
	PerSecond        metering.Credits `json:"per_second"`
	PerImage         metering.Credits `json:"per_image"`
	PerRequest       metering.Credits `json:"per_request"`
	UpdatedAt        time.Time        `json:"updated_at"`
}

func priceOut(p metering.Price) priceJSON {
	return priceJSON{Model: p.Model, InputPerMillion: p.InputPerMillion, OutputPerMillion: p.OutputPerMillion,
		PerCharacter: p.PerCharacter, PerSecond: p.PerSecond, PerImage: p.PerImage, PerRequest: p.PerRequest,
		UpdatedAt: timeJSON(p.UpdatedAt)}
}

// putPriceRequest is the body of PUT /prices/{model}: a whole price
// (absent rates are 0, since PUT replaces). The model comes from the path.
type putPriceRequest struct {
	InputPerMillion  amount `json:"input_per_million"`
	OutputPerMillion amount `json:"output_per_million"`
	PerCharacter     amount `json:"per_character"`
	PerSecond        amount `json:"per_second"`
	PerImage         amount `json:"per_image"`
	PerRequest       amount `json:"per_request"`
}

func (req *putPriceRequest) price(model string) (metering.Price, error) {
	p := metering.Price{Model: model}
	for _, f := range []struct {
		field string
		in    amount
		out   *metering.Credits
	}{
		{"input_per_million", req.InputPerMillion, &p.InputPerMillion},
		{"output_per_million", req.OutputPerMillion, &p.OutputPerMillion},
		{"per_character", req.PerCharacter, &p.PerCharacter},
		{"per_second", req.PerSecond, &p.PerSecond},
		{"per_image", req.PerImage, &p.PerImage},
		{"per_request", req.PerRequest, &p.PerRequest},
	} {
		v, err := f.in.credits(f.field)
		if err != nil {
			return p, err
		}
		*f.out = v
	}
	// Range and model name: Validate names the field.
	return p, p.Validate()
}

// listPrices: GET /prices → {"prices":[Price]}, by model.
func (a *api) listPrices(w http.ResponseWriter, r *http.Request) error {
	ps, err := a.engine.ListPrices(r.Context())
	if err != nil {
		return err
	}
	out := struct {
		Prices []priceJSON `json:"prices"`
	}{Prices: make([]priceJSON, len(ps))}
	for i, p := range ps {
		out.Prices[i] = priceOut(p)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getPrice: GET /prices/{model} → 200 Price, 404.
func (a *api) getPrice(w http.ResponseWriter, r *http.Request) error {
	p, err := a.engine.GetPrice(r.Context(), r.PathValue("model"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, priceOut(p))
	return nil
}

// putPrice: PUT /prices/{model} → 200 Price (created or replaced).
func (a *api) putPrice(w http.ResponseWriter, r *http.Request) error {
	var req putPriceRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	p, err := req.price(r.PathValue("model"))
	if err != nil {
		return err
	}
	saved, err := a.engine.PutPrice(r.Context(), actor(r), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, priceOut(saved))
	return nil
}

// deletePrice: DELETE /prices/{model} → 204, 404.
func (a *api) deletePrice(w http.ResponseWriter, r *http.Request) error {
	if err := a.engine.DeletePrice(r.Context(), actor(r), r.PathValue("model")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
