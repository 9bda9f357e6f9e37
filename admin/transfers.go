package admin

import "net/http"

func (a *api) transferRoutes() []route {
	return []route{
		{method: "POST", path: "/transfers", h: a.transfer},
	}
}

// transferRequest is the body of POST /transfers.
type transferRequest struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount amount `json:"amount"`
	Note   string `json:"note"`
}

// transfer: POST /transfers {"from","to","amount","note"} → 200 {"from":
// User, "to": User} once both ledger events are in Postgres; 409 when from
// lacks the awarded credits; 404 for an unknown user.
func (a *api) transfer(w http.ResponseWriter, r *http.Request) error {
	var req transferRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.From == "" {
		return invalidArg("from", "is required")
	}
	if req.To == "" {
		return invalidArg("to", "is required")
	}
	amt, err := req.Amount.requiredCredits("amount")
	if err != nil {
		return err
	}
	if amt <= 0 {
		return invalidArg("amount", "must be greater than 0")
	}
	from, to, err := a.engine.Transfer(r.Context(), actor(r), req.From, req.To, amt, req.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		From userJSON `json:"from"`
		To   userJSON `json:"to"`
	}{a.userOut(from), a.userOut(to)})
	return nil
}
