package admin

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// Page sizes of GET /dead-letters.
const (
	defaultDeadLetterLimit = 50
	maxDeadLetterLimit     = 1000
)

func (a *api) deadLetterRoutes() []route {
	return []route{
		{method: "GET", path: "/dead-letters", h: a.listDeadLetters, query: []string{"limit", "cursor"}},
	}
}

// deadLetterJSON is one entry of GET /dead-letters.
type deadLetterJSON struct {
	ID       string     `json:"id"`
	At       time.Time  `json:"at"`
	Entry    string     `json:"entry"`
	Reason   string     `json:"reason"`
	Consumer string     `json:"consumer"`
	Money    bool       `json:"money"`
	Event    *eventJSON `json:"event"`
	// Fields are the stream entry's fields as written; encoding/json
	// shows a byte that is not UTF-8 as U+FFFD.
	Fields map[string]string `json:"fields"`
}

// eventJSON is an event decoded: credits as exact decimals, optional
// fields left out when the event does not have them.
type eventJSON struct {
	ID          string           `json:"id"`
	Kind        string           `json:"kind"`
	OccurredAt  time.Time        `json:"occurred_at"`
	UserID      int64            `json:"user_id,omitempty"`
	Username    string           `json:"username,omitempty"`
	ProjectID   int64            `json:"project_id,omitempty"`
	ProjectName string           `json:"project,omitempty"`
	Cost        metering.Credits `json:"cost"`
	Allowance   metering.Credits `json:"allowance"`
	Pool        metering.Credits `json:"pool"`
	Awarded     metering.Credits `json:"awarded"`
	Purchased   metering.Credits `json:"purchased"`
	PoolUsed    metering.Credits `json:"pool_used"`
	Request     string           `json:"request,omitempty"`
	Actor       string           `json:"actor,omitempty"`
	Note        string           `json:"note,omitempty"`
	Model       string           `json:"model,omitempty"`
}

func eventOut(e *metering.Event) *eventJSON {
	if e == nil {
		return nil
	}
	return &eventJSON{ID: e.ID, Kind: e.Kind, OccurredAt: timeJSON(e.At), UserID: e.UserID, Username: e.Username,
		ProjectID: e.ProjectID, ProjectName: e.ProjectName, Cost: e.Cost, Allowance: e.Allowance, Pool: e.Pool,
		Awarded: e.Awarded, Purchased: e.Purchased, PoolUsed: e.PoolUsed, Request: e.Request, Actor: e.Actor,
		Note: e.Note, Model: e.Model}
}

// listDeadLetters: GET /dead-letters?limit=&cursor= →
// {"dead_letters":[...], "next_cursor"?}, newest first: the stream entries
// the reconciler could not record in Postgres, with the reason. One with
// "money": true is a balance change Redis has and the ledger lacks.
func (a *api) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := pageLimit(q, defaultDeadLetterLimit, maxDeadLetterLimit)
	if err != nil {
		return err
	}
	letters, next, err := a.engine.ListDeadLetters(r.Context(), limit, q.Get("cursor"))
	if err != nil {
		return err
	}
	out := struct {
		DeadLetters []deadLetterJSON `json:"dead_letters"`
		NextCursor  string           `json:"next_cursor,omitempty"`
	}{DeadLetters: make([]deadLetterJSON, len(letters)), NextCursor: next}
	for i, d := range letters {
		out.DeadLetters[i] = deadLetterJSON{ID: d.ID, At: timeJSON(d.At), Entry: d.Entry, Reason: d.Reason,
			Consumer: d.Consumer, Money: d.Money, Event: eventOut(d.Event), Fields: d.Fields}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// pageLimit reads a list's limit parameter: def when absent, else a whole
// number from 1 to max.
func pageLimit(q url.Values, def, max int) (int, error) {
	if !q.Has("limit") {
		return def, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 || n > max {
		return 0, invalidArg("limit", "must be a whole number from 1 to "+strconv.Itoa(max))
	}
	return n, nil
}
