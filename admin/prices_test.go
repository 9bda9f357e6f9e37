package admin_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

var priceKeys = []string{"model", "input_per_million", "output_per_million", "per_character",
	"per_second", "per_image", "per_request", "updated_at"}

func TestPrices(t *testing.T) {
	t.Parallel()
	e := setup(t)

	r := e.admin(t, "GET", "/prices", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []any{}, r.body["prices"])
	e.admin(t, "GET", "/prices/gpt-4o", "").requireError(t, http.StatusNotFound, "not_found", "")

	// Create: a model name with a slash; absent rates are 0; exact decimals.
	r = e.admin(t, "PUT", "/prices/openai/gpt-4o",
		`{"input_per_million": 2.5, "output_per_million": 10, "per_request": 0.000001}`).requireStatus(t, http.StatusOK)
	p := requireKeys(t, r.body, priceKeys...)
	require.Equal(t, "openai/gpt-4o", p["model"])
	require.Equal(t, num("2.5"), p["input_per_million"])
	require.Equal(t, num("10"), p["output_per_million"])
	require.Equal(t, num("0.000001"), p["per_request"])
	require.Equal(t, num("0"), p["per_image"])
	requireRFC3339(t, p["updated_at"])

	// Replace: PUT is the whole price, so what is absent becomes 0.
	r = e.admin(t, "PUT", "/prices/openai/gpt-4o", `{"output_per_million": 12}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("0"), r.body["input_per_million"])
	require.Equal(t, num("12"), r.body["output_per_million"])
	require.Equal(t, num("0"), r.body["per_request"])
	e.admin(t, "PUT", "/prices/tts-1", `{"per_character": 0.000015}`).requireStatus(t, http.StatusOK)

	r = e.do(t, "GET", base+"/prices/openai/gpt-4o", viewerSecret, "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("12"), requireKeys(t, r.body, priceKeys...)["output_per_million"])
	r = e.do(t, "GET", base+"/prices", viewerSecret, "").requireStatus(t, http.StatusOK)
	list := r.body["prices"].([]any)
	require.Len(t, list, 2)
	require.Equal(t, "openai/gpt-4o", requireKeys(t, list[0], priceKeys...)["model"])
	require.Equal(t, "tts-1", requireKeys(t, list[1], priceKeys...)["model"])

	// Viewers may not write.
	e.do(t, "PUT", base+"/prices/x", viewerSecret, `{}`).requireError(t, http.StatusForbidden, "forbidden", "")
	e.do(t, "DELETE", base+"/prices/tts-1", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")

	e.admin(t, "DELETE", "/prices/tts-1", "").requireStatus(t, http.StatusNoContent)
	e.admin(t, "GET", "/prices/tts-1", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "DELETE", "/prices/tts-1", "").requireError(t, http.StatusNotFound, "not_found", "")

	entries, _ := auditEntries(t, e.admin(t, "GET", "/audit?actor=ops", "").requireStatus(t, http.StatusOK))
	require.Equal(t, []string{"ops price.delete tts-1", "ops price.put tts-1",
		"ops price.put openai/gpt-4o", "ops price.put openai/gpt-4o"}, summary(entries))
	require.Equal(t, num("0.000015"), entries[0]["details"].(map[string]any)["per_character"])
	require.Equal(t, 1, e.countRows(t, "prices"))

	// Every shard's scripts check their own copy of the version.
	for _, sh := range e.Engine.Keys().Shards() {
		v, err := e.Redis.Get(e.ctx, sh.PriceVersion()).Int64()
		require.NoError(t, err)
		require.Equal(t, int64(4), v, "every write announced its version to shard %d", sh.Index())
	}
}

func TestPriceBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cases := []struct{ path, body, field string }{
		{"/prices/gpt", `{"input_per_million": -1}`, "input_per_million"},
		{"/prices/gpt", `{"output_per_million": 0.0000001}`, "output_per_million"},
		{"/prices/gpt", `{"per_character": "abc"}`, "per_character"},
		{"/prices/gpt", `{"per_second": 9007199254.740992}`, "per_second"},
		{"/prices/gpt", `{"per_image": true}`, "per_image"},
		{"/prices/gpt", `{"per_request": -0.5}`, "per_request"},
		{"/prices/gpt", `{"per_token": 1}`, "per_token"},
		{"/prices/gpt", `{"model": "other"}`, "model"},
		{"/prices/gpt%20x", `{}`, "model"},
		{"/prices/-gpt", `{}`, "model"},
		{"/prices/", `{}`, "model"},
	}
	for _, c := range cases {
		e.admin(t, "PUT", c.path, c.body).requireError(t, http.StatusBadRequest, "invalid_argument", c.field)
	}
	e.admin(t, "PUT", "/prices/gpt", `[]`).requireError(t, http.StatusBadRequest, "invalid_argument", "")
	require.Equal(t, 0, e.countRows(t, "prices"))
	require.Equal(t, 0, e.countRows(t, "audit_log"))
	for _, sh := range e.Engine.Keys().Shards() {
		n, err := e.Redis.Exists(e.ctx, sh.PriceVersion()).Result()
		require.NoError(t, err)
		require.Zero(t, n, "nothing announced to shard %d", sh.Index())
	}
}
