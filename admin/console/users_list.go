package console

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
)

func (c *Console) userListPages() []page {
	return []page{
		{method: "GET", path: "/users", h: c.userList},
		{method: "GET", path: "/users/export", h: c.userExport},
	}
}

// userListRow is the part of an API User the list shows.
type userListRow struct {
	Username         string       `json:"username"`
	Project          *string      `json:"project"`
	Status           string       `json:"status"`
	PersonalCredits  json.Number  `json:"personal_credits"`
	EffectiveCredits json.Number  `json:"effective_credits"`
	Key              *userListKey `json:"key"`
	LastActivityAt   *string      `json:"last_activity_at"`
}

type userListKey struct {
	Prefix string `json:"prefix"`
	Status string `json:"status"`
}

// userFilters are the list's filters as the filter form sends them; an
// empty one is not applied.
type userFilters struct {
	Search    string
	Project   string
	Status    string
	KeyStatus string
	Balance   string
	Sort      string
}

// userFilterParams are the query parameters of the filter form, in the
// order userFilters holds them (the API's names).
var userFilterParams = []string{"search", "project", "status", "key_status", "balance", "sort"}

func readUserFilters(q url.Values) userFilters {
	return userFilters{Search: q.Get("search"), Project: q.Get("project"), Status: q.Get("status"),
		KeyStatus: q.Get("key_status"), Balance: q.Get("balance"), Sort: q.Get("sort")}
}

// query is the filters as API (and console) query parameters. Empty
// filters are left out: the API refuses an empty project or status
// filter as a mistake, while the form sends "" for "all".
func (f userFilters) query() url.Values {
	q := url.Values{}
	for i, v := range []string{f.Search, f.Project, f.Status, f.KeyStatus, f.Balance, f.Sort} {
		if v != "" {
			q.Set(userFilterParams[i], v)
		}
	}
	return q
}

// Encoded is the filters as a query string, for links that keep them.
// url.Values.Encode escapes every part, so it is a safe URL part.
func (f userFilters) Encoded() template.URL { return template.URL(f.query().Encode()) }

type usersData struct {
	Filters  userFilters
	Projects []string
	Users    []userListRow
	// Cursor is this page's (empty on the first); Next the next page's.
	Cursor string
	Next   string
	Form   *formState
}

// NextQuery is the next page's query string: the filters and the cursor.
func (d usersData) NextQuery() template.URL {
	q := d.Filters.query()
	q.Set("cursor", d.Next)
	return template.URL(q.Encode()) // escaped by Encode
}

// userList: GET /users → one page of GET /users with the form's filters.
// A filter the API refuses shows its sentence above an empty table, with
// the filters as typed, so they can be corrected.
func (c *Console) userList(w http.ResponseWriter, r *http.Request, s *session) error {
	filters := readUserFilters(r.URL.Query())
	d := usersData{Filters: filters, Cursor: r.URL.Query().Get("cursor")}
	projects, err := c.usersProjectNames(r, s)
	if err != nil {
		return err
	}
	d.Projects = projects
	q := filters.query()
	if d.Cursor != "" {
		q.Set("cursor", d.Cursor)
	}
	var out struct {
		Users      []userListRow `json:"users"`
		NextCursor string        `json:"next_cursor"`
	}
	status := http.StatusOK
	if err := c.call(r, s, http.MethodGet, "/users", q, nil, &out); err != nil {
		var ae *apiError
		if !asAPIError(err, &ae) || ae.Status != http.StatusBadRequest {
			return err
		}
		d.Form = &formState{Form: "filter", Message: ae.Message, Field: ae.Field, Values: r.URL.Query()}
		status = http.StatusBadRequest
	}
	d.Users, d.Next = out.Users, out.NextCursor
	c.render(w, r, s, status, "users", "page.users", d)
	return nil
}

// userExport: GET /users/export → the API's CSV of every user the filters
// select, as a download. The cursor is not passed: the export holds all.
func (c *Console) userExport(w http.ResponseWriter, r *http.Request, s *session) error {
	q := readUserFilters(r.URL.Query()).query()
	return c.stream(w, r, s, "/users/export", q, "tollgate-users.csv")
}

// usersProjectNames lists every project's name, for the project selects.
func (c *Console) usersProjectNames(r *http.Request, s *session) ([]string, error) {
	var out struct {
		Projects []struct {
			Name string `json:"name"`
		} `json:"projects"`
	}
	if err := c.call(r, s, http.MethodGet, "/projects", nil, nil, &out); err != nil {
		return nil, err
	}
	names := make([]string, len(out.Projects))
	for i, p := range out.Projects {
		names[i] = p.Name
	}
	return names, nil
}
