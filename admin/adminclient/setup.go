package adminclient

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// The calls below set up a deployment: a project, a user's key, a price.
// Their bodies are the API's JSON objects as documented in admin-api.md,
// passed as any value encoding/json encodes (a struct, a map, or a
// json.RawMessage), so amounts can stay exact decimals (json.Number).

// CreateProject creates a project (POST /projects). A taken name is an
// *Error with Status 409.
func (c *Client) CreateProject(ctx context.Context, project any) error {
	return c.sendJSON(ctx, http.MethodPost, "/projects", project, nil)
}

// RotateKey gives a user a new key (POST /users/{username}/key/rotate) and
// returns it; the previous key stops working at once.
func (c *Client) RotateKey(ctx context.Context, username string) (string, error) {
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := c.sendJSON(ctx, http.MethodPost, "/users/"+url.PathEscape(username)+"/key/rotate", nil, &out); err != nil {
		return "", err
	}
	return out.APIKey, nil
}

// PutPrice creates or replaces a model's price (PUT /prices/{model}).
func (c *Client) PutPrice(ctx context.Context, model string, price any) error {
	return c.sendJSON(ctx, http.MethodPut, "/prices/"+url.PathEscape(model), price, nil)
}

// sendJSON sends body (nil: none) as JSON and decodes a 2xx answer into dst.
func (c *Client) sendJSON(ctx context.Context, method, path string, body, dst any) error {
	rd := io.Reader(http.NoBody)
	if body != nil {
		var err error
		if rd, err = jsonBody(body); err != nil {
			return err
		}
	}
	req, err := c.request(ctx, method, path, nil, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.doJSON(req, dst)
}
