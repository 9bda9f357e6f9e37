//go:build faults

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// The suite sets up users, projects and prices through the admin API of a
// running gateway, as an operator would.

const chatModel = "m"

var adminClient = &http.Client{Timeout: 20 * time.Second}

// admin calls the admin API on whichever gateway answers, retrying a
// transport error or a 5xx for up to a minute (setup runs with everything
// up, but a gateway may still be reconnecting after the last cycle). It
// returns the status and decodes a 2xx answer into out.
func (w *world) admin(method, path string, body, out any) (int, error) {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	status, last := 0, ""
	err := waitFor(method+" "+path, time.Minute, func() (bool, string) {
		for _, g := range w.gws {
			if !g.up() {
				continue
			}
			req, _ := http.NewRequest(method, g.base()+"/admin/v1"+path, bytes.NewReader(payload))
			req.Header.Set("Authorization", "Bearer "+w.adminToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := adminClient.Do(req)
			if err != nil {
				last = err.Error()
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status, last = resp.StatusCode, fmt.Sprintf("%d %s", resp.StatusCode, b)
			if status >= 500 {
				continue
			}
			if status/100 == 2 && out != nil {
				if err := json.Unmarshal(b, out); err != nil {
					last = err.Error()
					return false, last
				}
			}
			return true, ""
		}
		return false, last
	})
	if err == nil && status/100 != 2 {
		err = fmt.Errorf("%s %s: %s", method, path, last)
	}
	return status, err
}

// putPrice sets the chat model's price (the world starts with the first
// of inputRates and outputRates) and remembers it as the current one.
func (w *world) putPrice(p metering.Price) error {
	_, err := w.admin("PUT", "/prices/"+chatModel, map[string]any{
		"input_per_million": p.InputPerMillion, "output_per_million": p.OutputPerMillion}, nil)
	if err == nil {
		w.price = p
	}
	return err
}

// createProject makes a project whose pool holds pool credits.
func (w *world) createProject(name string, pool metering.Credits) error {
	status, err := w.admin("POST", "/projects", map[string]any{"name": name, "pool": map[string]any{"enabled": true}}, nil)
	if err != nil && status != http.StatusConflict { // 409: a retried create whose first answer was lost
		return err
	}
	_, err = w.admin("POST", "/projects/"+name+"/pool", map[string]any{"delta": pool, "note": "fault suite"}, nil)
	return err
}

// createUser makes a user with credits awarded and returns its key.
func (w *world) createUser(name, project string, credits metering.Credits) (string, error) {
	body := map[string]any{"username": name, "initial_credits": credits}
	if project != "" {
		body["project"] = project
	}
	var out struct {
		APIKey string `json:"api_key"`
	}
	status, err := w.admin("POST", "/users", body, &out)
	if status == http.StatusConflict {
		// A retried create whose first answer was lost: same user, new key.
		_, err = w.admin("POST", "/users/"+name+"/key/rotate", nil, &out)
	}
	if err == nil && out.APIKey == "" {
		err = fmt.Errorf("no api_key creating %s", name)
	}
	return out.APIKey, err
}
