package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/admin/adminclient"
	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

const seedToken = "seed-admin-token-0123456789"

// adminAPI serves the real admin handler over a test's own stores.
func adminAPI(t *testing.T) (*meteringtest.Bundle, *adminclient.Client) {
	t.Helper()
	b := meteringtest.New(t, meteringtest.Options{})
	h, err := admin.New(b.Engine, admin.Config{Tokens: []admin.Token{{Name: "ops", Secret: seedToken, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return b, &adminclient.Client{BaseURL: srv.URL + "/admin/v1", Token: seedToken}
}

func charge(t *testing.T, b *meteringtest.Bundle, key string) metering.ChargeStatus {
	t.Helper()
	res, err := b.Engine.Charge(t.Context(), key, metering.Micro, "GET /v1/models")
	require.NoError(t, err)
	return res.Status
}

func TestSeedDemo(t *testing.T) {
	t.Parallel()
	b, c := adminAPI(t)
	ctx := t.Context()
	var log bytes.Buffer
	spec := seedSpec{Project: "demo", User: "demo-user", InitialCredits: "1000", Model: "demo"}
	key, err := seedDemo(ctx, c, spec, &log)
	require.NoError(t, err)
	require.True(t, metering.WellFormedKey(key), "a Tollgate key: %q", key)
	require.Contains(t, log.String(), "created project demo")
	require.Contains(t, log.String(), "created user demo-user in project demo with 1000 credits")
	require.NotContains(t, log.String(), key, "the key goes to stdout only")

	// What make run prints: a project with its daily allowance, a user in
	// it with its credits, and the demo model's price, exactly.
	user := getJSON(t, c, "/users/demo-user")
	require.Equal(t, "demo", user["project"])
	require.Equal(t, getJSON(t, c, "/projects/demo")["allowance"], map[string]any{"amount": json.Number("100"), "period": "daily", "timezone": "UTC"})
	price := getJSON(t, c, "/prices/demo")
	for field, want := range map[string]string{"input_per_million": "1", "output_per_million": "2", "per_character": "0.00001", "per_second": "0.0001", "per_image": "0.02"} {
		require.Equal(t, json.Number(want), price[field], field)
	}
	require.Equal(t, metering.Charged, charge(t, b, key))

	// Again: the project stays, the user gets a new key and the old one
	// stops working; nothing else changes.
	log.Reset()
	key2, err := seedDemo(ctx, c, spec, &log)
	require.NoError(t, err)
	require.Contains(t, log.String(), "project demo exists")
	require.Contains(t, log.String(), "user demo-user exists; gave it a new key")
	require.NotEqual(t, key, key2)
	require.Equal(t, metering.KeyRefused, charge(t, b, key))
	require.Equal(t, metering.Charged, charge(t, b, key2))
}

func TestSeedDemoErrors(t *testing.T) {
	t.Parallel()
	_, c := adminAPI(t)
	ctx := t.Context()

	// A wrong token: the API's own sentence, with its status.
	bad := *c
	bad.Token = "wrong-token"
	_, err := seedDemo(ctx, &bad, seedSpec{Project: "demo", User: "demo-user", InitialCredits: "1", Model: "demo"}, &bytes.Buffer{})
	require.ErrorContains(t, err, "creating project demo")
	require.ErrorContains(t, err, "401")

	// Input the API refuses names the field.
	_, err = seedDemo(ctx, c, seedSpec{Project: "demo", User: "Not A Name!", InitialCredits: "1", Model: "demo"}, &bytes.Buffer{})
	require.ErrorContains(t, err, "creating user Not A Name!: ")
	require.ErrorContains(t, err, "username")
	_, err = seedDemo(ctx, c, seedSpec{Project: "demo", User: "bob", InitialCredits: "1e999", Model: "demo"}, &bytes.Buffer{})
	require.ErrorContains(t, err, "initial_credits")

	// Nothing answers at the URL.
	host, port := closedPort(t)
	gone := *c
	gone.BaseURL = "http://" + host + ":" + port + "/admin/v1"
	_, err = seedDemo(ctx, &gone, seedSpec{Project: "demo", User: "demo-user", InitialCredits: "1", Model: "demo"}, &bytes.Buffer{})
	require.ErrorContains(t, err, "connection refused")
}

// Through the command line: the key alone on stdout, the token only from
// the environment.
func TestSeedDemoCommand(t *testing.T) {
	b, c := adminAPI(t)
	t.Setenv("TOLLGATE_ADMIN_URL", c.BaseURL)
	t.Setenv("TOLLGATE_ADMIN_TOKEN", "")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"seed-demo"}, &stdout, &stderr)
	require.ErrorContains(t, err, "set TOLLGATE_ADMIN_TOKEN")

	t.Setenv("TOLLGATE_ADMIN_TOKEN", seedToken)
	require.NoError(t, run(t.Context(), []string{"seed-demo", "-project", "bench", "-user", "bench-user", "-initial-credits", "1000000000"}, &stdout, &stderr))
	key := strings.TrimSuffix(stdout.String(), "\n")
	require.True(t, metering.WellFormedKey(key), "stdout is the key alone: %q", stdout.String())
	require.Equal(t, metering.Charged, charge(t, b, key))
	require.Equal(t, "bench", getJSON(t, c, "/users/bench-user")["project"])
}

// getJSON reads one admin API object, numbers kept exact.
func getJSON(t *testing.T, c *adminclient.Client, path string) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, c.BaseURL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	var out map[string]any
	require.NoError(t, dec.Decode(&out))
	return out
}
