package console

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// statusTTL: the status strip is read from GET /health at most this
// often, whatever the number of pages shown.
const statusTTL = 3 * time.Second

// statusView is the strip at the top of every signed-in page.
type statusView struct {
	Redis       string       `json:"redis"`
	Postgres    string       `json:"postgres"`
	Reconciler  string       `json:"reconciler"`
	LagSeconds  *json.Number `json:"reconcile_lag_seconds"`
	DeadLetters *json.Number `json:"dead_letters"`
	OK          bool         `json:"-"`
	Unreachable bool         `json:"-"` // the health route itself failed
}

type statusCache struct {
	c    *Console
	now  func() time.Time
	mu   sync.Mutex
	at   time.Time
	last *statusView
}

func newStatusCache(c *Console, now func() time.Time) *statusCache {
	return &statusCache{c: c, now: now}
}

// get returns the health of Redis, Postgres and the reconciler, as
// GET /health reports it (503 answers carry the same body).
func (sc *statusCache) get(r *http.Request) *statusView {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.last != nil && sc.now().Sub(sc.at) < statusTTL {
		return sc.last
	}
	v := &statusView{}
	req, err := sc.c.apiRequest(r.Context(), r, "", http.MethodGet, "/health", nil, nil)
	if err == nil {
		rec := &bufferedResponse{header: http.Header{}}
		sc.c.api.ServeHTTP(rec, req)
		err = json.Unmarshal(rec.body.Bytes(), v)
		v.OK = rec.status == http.StatusOK
	}
	if err != nil {
		v = &statusView{Unreachable: true}
	}
	sc.last, sc.at = v, sc.now()
	return v
}
