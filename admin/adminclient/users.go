package adminclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ImportRow is one row of an import answer. A valid row also says what it
// writes (amounts as the exact decimals the server sent; Project nil for
// no project).
type ImportRow struct {
	Line           int         `json:"line"`
	Username       string      `json:"username"`
	UsernameInFile string      `json:"username_in_file,omitempty"`
	Status         string      `json:"status"` // "ok" or "error"
	Error          string      `json:"error,omitempty"`
	APIKey         string      `json:"api_key,omitempty"`
	Project        *string     `json:"project,omitempty"`
	InitialCredits json.Number `json:"initial_credits,omitempty"`
	Purchased      json.Number `json:"purchased,omitempty"`
	MonthlyGrant   json.Number `json:"monthly_grant,omitempty"`
	Partner        *bool       `json:"partner,omitempty"`
	UserStatus     string      `json:"user_status,omitempty"`
	KeyExpiresAt   *string     `json:"key_expires_at,omitempty"`
}

// ImportResult is the answer of POST /users/import.
type ImportResult struct {
	Rows    []ImportRow  `json:"rows"`
	Created int          `json:"created"`
	Totals  ImportTotals `json:"totals"`
}

// ImportTotals adds up the valid rows of an import, overall and per
// project (Project nil: the users without one).
type ImportTotals struct {
	Users          int         `json:"users"`
	InitialCredits json.Number `json:"initial_credits"`
	Purchased      json.Number `json:"purchased"`
	MonthlyGrant   json.Number `json:"monthly_grant"`
	Partners       int         `json:"partners"`
	Inactive       int         `json:"inactive"`
	Projects       []struct {
		Project        *string     `json:"project"`
		Users          int         `json:"users"`
		InitialCredits json.Number `json:"initial_credits"`
		Purchased      json.Number `json:"purchased"`
		MonthlyGrant   json.Number `json:"monthly_grant"`
	} `json:"projects"`
}

// Failed counts the rows with an error.
func (r *ImportResult) Failed() int {
	n := 0
	for _, row := range r.Rows {
		if row.Status != "ok" {
			n++
		}
	}
	return n
}

// ImportUsers uploads a CSV file (size bytes, -1 if unknown). progress,
// when not nil, is called as the body is sent. When the server rejects
// the file because of bad rows (400 with rows), both the rows and the
// *Error are returned.
func (c *Client) ImportUsers(ctx context.Context, csv io.Reader, size int64, dryRun bool, progress func(sent, total int64)) (*ImportResult, error) {
	body := csv
	if progress != nil {
		body = &progressReader{r: csv, total: size, fn: progress}
	}
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	req, err := c.request(ctx, http.MethodPost, "/users/import", q, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "text/csv")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the admin API answer: %w", err)
	}
	var res ImportResult
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, fmt.Errorf("admin API answer is not the expected JSON: %w", err)
		}
		return &res, nil
	}
	apiErr := decodeError(resp, raw)
	if json.Unmarshal(raw, &res) == nil && len(res.Rows) > 0 {
		return &res, apiErr
	}
	return nil, apiErr
}

// progressReader reports how much of a body has been read (sent).
type progressReader struct {
	r     io.Reader
	sent  int64
	total int64
	fn    func(sent, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if n > 0 || errors.Is(err, io.EOF) {
		p.fn(p.sent, p.total)
	}
	return n, err
}

// UserFilter holds the filters of GET /users and GET /users/export
// (KeyOlderThan is written as the API takes it, "90d").
type UserFilter struct {
	Search, Project, Status, KeyStatus, KeyOlderThan, Sort string
}

func (f UserFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"search": f.Search, "project": f.Project, "status": f.Status,
		"key_status": f.KeyStatus, "key_older_than": f.KeyOlderThan, "sort": f.Sort} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// ExportUsers writes the CSV of GET /users/export to w as it arrives.
func (c *Client) ExportUsers(ctx context.Context, f UserFilter, w io.Writer) error {
	req, err := c.request(ctx, http.MethodGet, "/users/export", f.query(), nil)
	if err != nil {
		return err
	}
	return c.stream(req, w)
}

// CreateUserRequest is the body of POST /users. Amounts are decimal
// strings sent as exact JSON numbers ("" leaves the field out).
type CreateUserRequest struct {
	Username       string
	Project        string // "" for none
	InitialCredits string
	Purchased      string
	MonthlyGrant   string
	Partner        bool
}

// CreatedUser is the answer of POST /users: the user object as the server
// sent it, and the key, shown this once.
type CreatedUser struct {
	User   json.RawMessage `json:"user"`
	APIKey string          `json:"api_key"`
}

// CreateUser creates a user.
func (c *Client) CreateUser(ctx context.Context, r CreateUserRequest) (*CreatedUser, error) {
	body := map[string]any{"username": r.Username}
	if r.Project != "" {
		body["project"] = r.Project
	}
	if r.Partner {
		body["partner"] = true
	}
	for field, v := range map[string]string{"initial_credits": r.InitialCredits, "purchased": r.Purchased, "monthly_grant": r.MonthlyGrant} {
		if v == "" {
			continue
		}
		if _, err := json.Marshal(json.Number(v)); err != nil {
			return nil, fmt.Errorf("%s %q is not a number", field, v)
		}
		// json.Number keeps the decimal exactly as typed: no float round trip.
		body[field] = json.Number(v)
	}
	rd, err := jsonBody(body)
	if err != nil {
		return nil, err
	}
	req, err := c.request(ctx, http.MethodPost, "/users", nil, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var out CreatedUser
	if err := c.doJSON(req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Usage writes the answer of GET /usage with the given query (user,
// project, from, to, group_by, format) to w, as the server sent it.
func (c *Client) Usage(ctx context.Context, query url.Values, w io.Writer) error {
	req, err := c.request(ctx, http.MethodGet, "/usage", query, nil)
	if err != nil {
		return err
	}
	return c.stream(req, w)
}
