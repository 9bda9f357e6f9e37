// Package adminclient calls the admin API over HTTP (see admin-api.md). It
// backs the `tollgate users …` and `tollgate usage` commands and has no
// Caddy dependency, so other tools can use it too.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultURL is where the example Caddyfile serves the admin API.
const DefaultURL = "http://127.0.0.1:8080/admin/v1"

// Client calls one admin API with one token.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080/admin/v1
	Token   string
	// HTTP is the client used; default http.DefaultClient. No timeout is
	// set by default: an import of a large file or an export of many users
	// takes as long as it takes, and the context cancels it.
	HTTP *http.Client
}

// Error is an error answer of the API: its status and the
// {"error":{"code","message","field"}} body.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

// Error is the server's message with the status and code. The server's
// messages name the field they are about; one that does not gets the
// field in front.
func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	if e.Code == "" {
		return fmt.Sprintf("admin API answered %d: %s", e.Status, msg)
	}
	return fmt.Sprintf("%s (%d %s)", msg, e.Status, e.Code)
}

// request builds a request for path (below BaseURL) with the token set.
func (c *Client) request(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	if c.BaseURL == "" {
		return nil, errors.New("no admin API URL")
	}
	if c.Token == "" {
		return nil, errors.New("no admin token")
	}
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("admin API URL: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	return req, nil
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	h := c.HTTP
	if h == nil {
		h = http.DefaultClient
	}
	resp, err := h.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API at %s: %w", redactURL(req.URL), err)
	}
	return resp, nil
}

// decodeError reads an error answer.
func decodeError(resp *http.Response, raw []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
		return e
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e.Message = msg
	return e
}

// getJSON-like helper: send req, and on 2xx decode the JSON answer into dst.
func (c *Client) doJSON(req *http.Request, dst any) error {
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the admin API answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return decodeError(resp, raw)
	}
	if dst == nil {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("admin API answer is not the expected JSON: %w", err)
	}
	return nil
}

// stream sends req and copies a 2xx body to w.
func (c *Client) stream(req *http.Request, w io.Writer) error {
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return decodeError(resp, raw)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("the answer was cut short: %w", err)
	}
	return nil
}

func redactURL(u *url.URL) string {
	c := *u
	c.RawQuery, c.User = "", nil
	return c.String()
}

// jsonBody encodes v for a request body.
func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}
