package browser

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// httpClient talks to the gateway without a browser: fixtures and checks
// through the admin API, and metered calls with a user's key.
var httpClient = &http.Client{Timeout: actionTimeout}

// api calls the admin API with the admin token and decodes a JSON answer
// into out (when not nil). It returns the HTTP status.
func api(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, theWorld(t).stack.main.URL+"/admin/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 && len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// apiRefusal sends a request the API refuses and returns the status and
// the API's sentence, to compare with what the console shows.
func apiRefusal(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, theWorld(t).stack.main.URL+"/admin/v1"+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Error.Message == "" {
		t.Fatalf("%s %s: HTTP %d without an error sentence (%v)", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, out.Error.Message
}

// mustAPI is api that fails the test unless the status is want.
func mustAPI(t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	if got := api(t, method, path, body, out); got != want {
		t.Fatalf("%s /admin/v1%s: HTTP %d, want %d", method, path, got, want)
	}
}

// user is the part of the API's User the tests look at.
type user struct {
	Username         string      `json:"username"`
	Project          *string     `json:"project"`
	Status           string      `json:"status"`
	Awarded          json.Number `json:"awarded"`
	Purchased        json.Number `json:"purchased"`
	PersonalCredits  json.Number `json:"personal_credits"`
	EffectiveCredits json.Number `json:"effective_credits"`
	MonthlyGrant     json.Number `json:"monthly_grant"`
	Partner          bool        `json:"partner"`
	HasUsage         bool        `json:"has_usage"`
	Key              struct {
		Prefix    string  `json:"prefix"`
		Status    string  `json:"status"`
		ExpiresAt *string `json:"expires_at"`
	} `json:"key"`
}

// project is the part of the API's Project the tests look at.
type project struct {
	Name      string `json:"name"`
	Allowance struct {
		Amount   json.Number `json:"amount"`
		Period   string      `json:"period"`
		Timezone string      `json:"timezone"`
	} `json:"allowance"`
	Pool struct {
		Enabled      bool         `json:"enabled"`
		Balance      json.Number  `json:"balance"`
		PerUserLimit *json.Number `json:"per_user_limit"`
	} `json:"pool"`
	Users int `json:"users"`
}

// getUser reads a user through the API.
func getUser(t *testing.T, name string) user {
	t.Helper()
	var u user
	mustAPI(t, http.StatusOK, "GET", "/users/"+name, nil, &u)
	return u
}

// createUser makes a user through the API and returns its key.
func createUser(t *testing.T, spec map[string]any) string {
	t.Helper()
	var out struct {
		APIKey string `json:"api_key"`
	}
	mustAPI(t, http.StatusCreated, "POST", "/users", spec, &out)
	return out.APIKey
}

// uniqueName is a valid user or project name no other test uses.
func uniqueName(stem string) string {
	return stem + "-" + randomHex(3)
}

// metered makes the flat 1-credit call GET /v1/models with key and returns
// the HTTP status.
func metered(t *testing.T, key string) int {
	t.Helper()
	req, err := http.NewRequest("GET", theWorld(t).stack.main.URL+"/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/models: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// today is the current UTC day, as a date input holds it.
func today() string { return time.Now().UTC().Format("2006-01-02") }

// containsAll reports which of want are missing from s.
func missing(s string, want ...string) []string {
	var out []string
	for _, w := range want {
		if !strings.Contains(s, w) {
			out = append(out, w)
		}
	}
	return out
}

// waitFor polls cond until it holds, for what the gateway records in the
// background (the ledger trails the live balances by moments). It waits
// for an outcome and asserts nothing about how long it took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after 60 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
