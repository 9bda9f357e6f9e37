package admin

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// Page sizes of GET /users.
const (
	defaultUserLimit = metering.DefaultUserLimit
	maxUserLimit     = metering.MaxUserLimit
)

func (a *api) userRoutes() []route {
	return []route{
		{method: "POST", path: "/users", h: a.createUser},
		{method: "GET", path: "/users", h: a.listUsers, query: userListParams},
		{method: "GET", path: "/users/{username}", h: a.getUser},
		{method: "POST", path: "/users/{username}/credits", h: a.adjustCredits},
		{method: "POST", path: "/users/{username}/deactivate", h: a.setActive(false)},
		{method: "POST", path: "/users/{username}/activate", h: a.setActive(true)},
		{method: "POST", path: "/users/{username}/key/rotate", h: a.rotateKey},
		{method: "PATCH", path: "/users/{username}", h: a.patchUser},
		{method: "DELETE", path: "/users/{username}", h: a.deleteUser},
		{method: "GET", path: "/users/{username}/key", h: a.revealKey, adminOnly: true},
	}
}

// userFilterParams are the filters of GET /users and GET /users/export;
// the listing pages with limit and cursor too.
var (
	userFilterParams = []string{"search", "project", "status", "key_status", "key_older_than", "balance", "sort"}
	userListParams   = append(append([]string(nil), userFilterParams...), "limit", "cursor")
)

// userJSON is the User object of the contract. Balances are the live
// (Redis) ones; Postgres's lag by the events not yet reconciled.
type userJSON struct {
	Username           string           `json:"username"`
	Project            *string          `json:"project"`
	Status             string           `json:"status"`
	PersonalCredits    metering.Credits `json:"personal_credits"`
	Awarded            metering.Credits `json:"awarded"`
	Purchased          metering.Credits `json:"purchased"`
	AllowanceRemaining metering.Credits `json:"allowance_remaining"`
	PoolAvailable      metering.Credits `json:"pool_available"`
	EffectiveCredits   metering.Credits `json:"effective_credits"`
	MonthlyGrant       metering.Credits `json:"monthly_grant"`
	Partner            bool             `json:"partner"`
	NextGrantAt        *time.Time       `json:"next_grant_at"` // null while no grant runs
	Key                *keyJSON         `json:"key"`
	HasUsage           bool             `json:"has_usage"`
	InFlight           int64            `json:"in_flight"`
	LastActivityAt     *time.Time       `json:"last_activity_at"`
	CreatedAt          time.Time        `json:"created_at"`
}

// keyJSON describes a user's key without revealing it. Status is what a
// gateway does with it now: "active", "expired" (past expires_at) or
// "revoked" (the user is deactivated).
type keyJSON struct {
	Prefix    string             `json:"prefix"`
	Status    metering.KeyStatus `json:"status"`
	CreatedAt time.Time          `json:"created_at"`
	ExpiresAt *time.Time         `json:"expires_at"`
}

// userOut is v as the contract's User, its key's status as of now.
func (a *api) userOut(v metering.UserView) userJSON {
	out := userJSON{
		Username:           v.Username,
		Status:             "inactive",
		PersonalCredits:    v.Live.Awarded + v.Live.Purchased,
		Awarded:            v.Live.Awarded,
		Purchased:          v.Live.Purchased,
		AllowanceRemaining: v.Live.Allowance,
		PoolAvailable:      v.Live.PoolAvailable,
		EffectiveCredits:   v.Live.Effective,
		MonthlyGrant:       v.MonthlyGrant,
		Partner:            v.Partner,
		NextGrantAt:        optionalTimeJSON(v.NextGrantAt),
		HasUsage:           v.HasUsage,
		InFlight:           v.InFlight,
		LastActivityAt:     optionalTimeJSON(v.LastActivityAt),
		CreatedAt:          timeJSON(v.CreatedAt),
	}
	if v.ProjectName != "" {
		p := v.ProjectName
		out.Project = &p
	}
	if v.Active {
		out.Status = "active"
	}
	if k := v.Key; k != nil {
		out.Key = &keyJSON{Prefix: k.Prefix, Status: v.KeyStatus(a.engine.Now()), CreatedAt: timeJSON(k.CreatedAt),
			ExpiresAt: optionalTimeJSON(k.ExpiresAt)}
	}
	return out
}

// createUserRequest is the body of POST /users.
type createUserRequest struct {
	Username       string  `json:"username"`
	Project        *string `json:"project"` // null or absent: unassigned
	InitialCredits amount  `json:"initial_credits"`
	Purchased      amount  `json:"purchased"`
	MonthlyGrant   amount  `json:"monthly_grant"`
	Partner        bool    `json:"partner"`
	KeyExpiresAt   *string `json:"key_expires_at"`
}

func (req *createUserRequest) spec() (metering.UserSpec, error) {
	s := metering.UserSpec{Username: req.Username, Partner: req.Partner}
	if req.Project != nil {
		if *req.Project == "" {
			return s, invalidArg("project", "must be a project name or null")
		}
		s.Project = *req.Project
	}
	var err error
	if s.InitialCredits, err = req.InitialCredits.credits("initial_credits"); err != nil {
		return s, err
	}
	if s.Purchased, err = req.Purchased.credits("purchased"); err != nil {
		return s, err
	}
	if s.MonthlyGrant, err = req.MonthlyGrant.credits("monthly_grant"); err != nil {
		return s, err
	}
	if s.KeyExpiresAt, err = parseTime("key_expires_at", req.KeyExpiresAt); err != nil {
		return s, err
	}
	return s, nil
}

// createUser: POST /users → 201 {"user": User, "api_key": "tg_..."}; 409
// when the username is taken. The key is shown this once.
func (a *api) createUser(w http.ResponseWriter, r *http.Request) error {
	var req createUserRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Username == "" {
		return invalidArg("username", "is required")
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	v, key, err := a.engine.CreateUser(r.Context(), actor(r), spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, struct {
		User   userJSON `json:"user"`
		APIKey string   `json:"api_key"`
	}{a.userOut(v), key})
	return nil
}

// listUsers: GET /users?search=&project=&status=&sort=&limit=&cursor= →
// {"users":[User],"next_cursor":"..."}; next_cursor is absent on the last
// page. The cursor is opaque; metering.UserQuery documents the orders.
func (a *api) listUsers(w http.ResponseWriter, r *http.Request) error {
	q, err := userQueryFrom(r)
	if err != nil {
		return err
	}
	views, next, err := a.engine.FindUsers(r.Context(), q)
	if err != nil {
		return err
	}
	out := struct {
		Users      []userJSON `json:"users"`
		NextCursor string     `json:"next_cursor,omitempty"`
	}{Users: make([]userJSON, len(views)), NextCursor: next}
	for i, v := range views {
		out.Users[i] = a.userOut(v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// userQueryFrom reads the listing filters of GET /users (and of anything
// that lists users the same way). The engine validates the values; this
// only rejects what cannot be parsed. The route table has refused unknown
// and repeated parameters already.
func userQueryFrom(r *http.Request) (metering.UserQuery, error) {
	q := r.URL.Query()
	uq := metering.UserQuery{Search: q.Get("search"), Project: q.Get("project"), Status: q.Get("status"),
		KeyStatus: metering.KeyStatus(q.Get("key_status")), Cursor: q.Get("cursor"), Balance: q.Get("balance")}
	// An empty search matches everyone and an empty cursor is the first
	// page, but an empty project, status or balance filter is a mistake.
	for _, name := range []string{"project", "status", "key_status", "balance"} {
		if q.Has(name) && q.Get(name) == "" {
			return uq, invalidArg(name, "must not be empty")
		}
	}
	uq.Sort = metering.UserSort(q.Get("sort"))
	if q.Has("sort") && uq.Sort == "" {
		return uq, invalidArg("sort", `must be "username", "-credits" or "-activity"`)
	}
	if q.Has("key_older_than") {
		d, err := parseDays(q.Get("key_older_than"))
		if err != nil {
			return uq, invalidArg("key_older_than", err.Error())
		}
		uq.KeyOlderThan = d
	}
	var err error
	uq.Limit, err = pageLimit(q, 0, maxUserLimit) // 0: the engine's default
	return uq, err
}

// getUser: GET /users/{username} → User.
func (a *api) getUser(w http.ResponseWriter, r *http.Request) error {
	v, err := a.engine.GetUser(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.userOut(v))
	return nil
}

// adjustCreditsRequest is the body of POST /users/{username}/credits.
type adjustCreditsRequest struct {
	Delta  amount `json:"delta"`
	Bucket string `json:"bucket"` // default awarded
	Note   string `json:"note"`
}

// adjustCredits: POST /users/{username}/credits → User; 409 when the
// bucket would go below zero.
func (a *api) adjustCredits(w http.ResponseWriter, r *http.Request) error {
	var req adjustCreditsRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	delta, err := req.Delta.requiredCredits("delta")
	if err != nil {
		return err
	}
	bucket := metering.BucketAwarded
	if req.Bucket != "" {
		bucket = metering.Bucket(req.Bucket)
	}
	if bucket != metering.BucketAwarded && bucket != metering.BucketPurchased {
		return invalidArg("bucket", `must be "awarded" or "purchased"`)
	}
	v, err := a.engine.AdjustCredits(r.Context(), actor(r), r.PathValue("username"), bucket, delta, req.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.userOut(v))
	return nil
}

// setActive: POST /users/{username}/deactivate and /activate → User. The
// key stops (or starts again) working at once; balances are kept.
func (a *api) setActive(active bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		v, err := a.engine.SetUserActive(r.Context(), actor(r), r.PathValue("username"), active)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, a.userOut(v))
		return nil
	}
}

// rotateKey: POST /users/{username}/key/rotate → {"api_key": "tg_..."}.
// The old key fails from this moment; the new one is shown this once.
func (a *api) rotateKey(w http.ResponseWriter, r *http.Request) error {
	key, err := a.engine.RotateKey(r.Context(), actor(r), r.PathValue("username"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiKeyJSON{key})
	return nil
}

// apiKeyJSON answers a rotation or a reveal: the key itself, shown to the
// caller and never logged.
type apiKeyJSON struct {
	APIKey string `json:"api_key"`
}
