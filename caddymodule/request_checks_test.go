package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// checksConfig is meteredConfig plus a route that charges models without a
// price a flat amount (so a model name is recorded whatever it is).
func checksConfig(t *testing.T, b *meteringtest.Bundle, listen, upstreamAddr string) string {
	return strings.Replace(meteredConfig(t, b, listen, upstreamAddr), "\thandle {\n", `	handle /flat/* {
		metering {
			price_by model
			unknown_model 0.5
		}
		reverse_proxy `+upstreamAddr+`
	}
	handle {
`, 1)
}

func setupChecks(t *testing.T) *meteredWorld {
	return startWorld(t, checksConfig, "m", "verbose", "alias", "slowstart")
}

// apiError is an answer in the OpenAI error shape.
type apiError struct {
	Error struct {
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// send makes one request with the key in Authorization and returns the
// status and, for an error, its decoded body.
func (w *meteredWorld) send(t *testing.T, method, path, key, contentType string, body []byte) (int, apiError) {
	t.Helper()
	req, err := http.NewRequest(method, w.base+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := w.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e apiError
	if resp.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(raw, &e), "%d %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, e
}

func (w *meteredWorld) postJSON(t *testing.T, path, key, body string) (int, apiError) {
	t.Helper()
	return w.send(t, "POST", path, key, "application/json", []byte(body))
}

// usageEvent is a settled request as the ledger holds it.
type usageEvent struct {
	request, model, served string
	reserved, cost         int64
	status                 *int64
}

// usageEvents drains the stream and reads the user's usage events in order.
func (w *meteredWorld) usageEvents(t *testing.T, user string) []usageEvent {
	t.Helper()
	w.settled(t, user)
	w.b.Drain(t)
	rows, err := w.b.DB.Query(context.Background(), `SELECT coalesce(request, ''), coalesce(model, ''),
		coalesce(served_model, ''), coalesce(reserved, 0), cost, upstream_status
		FROM events WHERE kind = 'usage' AND username = $1 ORDER BY occurred_at, event_id`, user)
	require.NoError(t, err)
	defer rows.Close()
	var out []usageEvent
	for rows.Next() {
		var e usageEvent
		require.NoError(t, rows.Scan(&e.request, &e.model, &e.served, &e.reserved, &e.cost, &e.status))
		out = append(out, e)
	}
	require.NoError(t, rows.Err())
	return out
}

// Defect 1: the request label (method and path) and the model are the
// client's texts; they reach the ledger only cleaned or validated.
func TestRequestLabelAndModelAreSafeForTheLedger(t *testing.T) {
	w := setupChecks(t)
	start := 10 * metering.Micro
	key := w.user(t, "ann", start)

	status, _ := w.send(t, "GET", "/x%ff%00y", key, "", nil)
	require.Equal(t, 200, status, "fixed cost")
	status, _ = w.postJSON(t, "/v1/a%ff%00b/chat/completions", key, `{"model":"m","max_tokens":5,"messages":[]}`)
	require.Equal(t, 200, status, "priced")
	reached := w.up.count()

	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m\u0000x","messages":[]}`},
		{"/v1/chat/completions", `{"model":"a b","messages":[]}`},
		{"/flat/chat/completions", `{"model":"gpt-4o\u00e9","messages":[]}`},
		{"/flat/chat/completions", `{"model":"` + strings.Repeat("m", 300) + `","messages":[]}`},
		{"/flat/chat/completions", `{"model":42,"messages":[]}`},
	} {
		status, e := w.postJSON(t, c.path, key, c.body)
		require.Equal(t, 400, status, c.body)
		require.NotNil(t, e.Error.Param, c.body)
		require.Equal(t, "model", *e.Error.Param, c.body)
	}
	require.Equal(t, reached, w.up.count(), "a refused model never reaches the upstream")

	// The flat route still records a valid model that has no price.
	status, _ = w.postJSON(t, "/flat/chat/completions", key, `{"model":"no-price","messages":[]}`)
	require.Equal(t, 200, status)

	events := w.usageEvents(t, "ann")
	require.Len(t, events, 3)
	seen := map[string]bool{}
	for _, e := range events {
		require.True(t, utf8.ValidString(e.request+e.model))
		seen[e.request] = true
		seen["model "+e.model] = true
	}
	require.True(t, seen["GET /x\uFFFD\uFFFDy"], "%+v", events)
	require.True(t, seen["POST /v1/a\uFFFD\uFFFDb/chat/completions"], "%+v", events)
	require.True(t, seen["model no-price"], "%+v", events)
	w.b.AssertConsistent(t)
}

// Defect 2: the upstream receives exactly the body the estimate read, so
// a body different parsers read differently is refused, naming the field.
func TestAmbiguousBodiesAreRefused(t *testing.T) {
	w := setupChecks(t)
	putTestPrices(t, w.b, "cheap")
	dear := testPrice
	dear.Model, dear.OutputPerMillion = "dear", 100*testPrice.OutputPerMillion
	_, err := w.b.Engine.PutPrice(context.Background(), "test", dear)
	require.NoError(t, err)
	start := 10 * metering.Micro
	key := w.user(t, "ann", start)

	for _, body := range []string{
		`{"MODEL":"dear","model":"cheap","messages":[]}`,
		`{"model":"cheap","Model":"dear","messages":[]}`,
		`{"model":"cheap","model":"dear","messages":[]}`,
		`{"model":"dear","mod\u0065l":"cheap","messages":[]}`,
		`{"model":"cheap","messages":[{"role":"user","content":"a","content":"b"}]}`,
		`{"model":"cheap","messages":[{"role":"user","Content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}`,
		`{"model":"cheap","max_tokens":5,"max_to` + "\u212a" + `ens":100000,"messages":[]}`, // Kelvin sign: Go folds it to k
		"\xef\xbb\xbf" + `{"model":"cheap","messages":[]}`,
		`{"model":"cheap","messages":[]}{"model":"dear"}`,
		`{"model":"cheap","messages":[],"x":"` + "\xff" + `"}`,
	} {
		status, e := w.postJSON(t, "/v1/chat/completions", key, body)
		require.Equal(t, 400, status, body)
		require.Contains(t, []string{"ambiguous_field", "invalid_json"}, e.Error.Code, body)
	}

	// Multipart: the model part once, spelled exactly.
	form := func(names ...string) (string, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", "a.mp3")
		fw.Write(bytes.Repeat([]byte{1}, 1000))
		for i := 0; i < len(names); i += 2 {
			mw.WriteField(names[i], names[i+1])
		}
		mw.Close()
		return mw.FormDataContentType(), buf.Bytes()
	}
	for _, fields := range [][]string{{"model", "cheap", "model", "dear"}, {"MODEL", "dear", "model", "cheap"}} {
		ct, body := form(fields...)
		status, e := w.send(t, "POST", "/v1/audio/transcriptions", key, ct, body)
		require.Equal(t, 400, status, fields)
		require.Equal(t, "ambiguous_field", e.Error.Code)
		require.Equal(t, "model", *e.Error.Param)
	}

	require.Zero(t, w.up.count(), "nothing ambiguous reached the upstream")
	require.Equal(t, start, w.settled(t, "ann"), "refused is not charged")
}

// Defect 2: the upstream says which model it served; a different model
// with a price is charged at the higher of the two prices, and the event
// records both.
func TestServedModelIsCompared(t *testing.T) {
	w := setupChecks(t)
	ctx := context.Background()
	dear := testPrice
	dear.Model = "dear"
	dear.InputPerMillion, dear.OutputPerMillion = 3*testPrice.InputPerMillion, 3*testPrice.OutputPerMillion
	_, err := w.b.Engine.PutPrice(ctx, "test", dear)
	require.NoError(t, err)
	start := 10 * metering.Micro
	c := w.client(w.user(t, "ann", start))

	_, err = c.Chat.Completions.New(ctx, chatParams("alias", 50))
	require.NoError(t, err)
	s := c.Chat.Completions.NewStreaming(ctx, chatParams("alias", 50))
	for s.Next() {
	}
	require.NoError(t, s.Err())
	dearCost := 3 * costOf(fakePrompt, fakeCompletion)
	require.Equal(t, start-2*dearCost, w.settled(t, "ann"))

	// Served a cheaper model than reserved: the reserved (higher) price.
	dear.InputPerMillion, dear.OutputPerMillion = 1, 1
	_, err = w.b.Engine.PutPrice(ctx, "test", dear)
	require.NoError(t, err)
	_, err = c.Chat.Completions.New(ctx, chatParams("alias", 50))
	require.NoError(t, err)
	require.Equal(t, start-2*dearCost-costOf(fakePrompt, fakeCompletion), w.settled(t, "ann"))

	events := w.usageEvents(t, "ann")
	require.Len(t, events, 3)
	costs := map[int64]int{}
	for _, e := range events {
		require.Equal(t, "alias", e.model)
		require.Equal(t, "dear", e.served)
		costs[e.cost]++
	}
	require.Equal(t, map[int64]int{int64(dearCost): 2, int64(costOf(fakePrompt, fakeCompletion)): 1}, costs)
	w.b.AssertConsistent(t)
}

// Defect 3: with no output limit from the client, the limit reserved is
// sent upstream in the endpoint's field; limits that are not positive
// integers are refused; the input is reserved at its byte bound.
func TestOutputLimitIsSentAndInputBounded(t *testing.T) {
	w := setupChecks(t)
	start := 100 * metering.Micro
	key := w.user(t, "ann", start)

	limitSent := func(path, body, field string) {
		t.Helper()
		status, e := w.postJSON(t, path, key, body)
		require.Equal(t, 200, status, "%s %+v", body, e)
		var got map[string]any
		require.NoError(t, json.Unmarshal(w.up.last(t).body, &got))
		require.EqualValues(t, 100, got[field], "%s: the route's cap is sent as %s", body, field)
	}
	chat := `{"model":"m","messages":[{"role":"user","content":"日本語のテキストです"}]}`
	limitSent("/v1/chat/completions", chat, "max_completion_tokens")
	limitSent("/v1/completions", `{"model":"m","prompt":"hello"}`, "max_tokens")
	limitSent("/v1/responses", `{"model":"m","input":"hello"}`, "max_output_tokens")
	limitSent("/v1/chat/completions", `{"model":"m","max_completion_tokens":null,"messages":[]}`, "max_completion_tokens")

	reached := w.up.count()
	for body, param := range map[string]string{
		`{"model":"m","max_tokens":4.0,"messages":[]}`:            "max_tokens",
		`{"model":"m","max_tokens":-5,"messages":[]}`:             "max_tokens",
		`{"model":"m","max_completion_tokens":"9","messages":[]}`: "max_completion_tokens",
		`{"model":"m","n":"2","messages":[]}`:                     "n",
		`{"model":"m","n":2.0,"messages":[]}`:                     "n",
	} {
		status, e := w.postJSON(t, "/v1/chat/completions", key, body)
		require.Equal(t, 400, status, body)
		require.Equal(t, param, *e.Error.Param, body)
	}
	require.Equal(t, reached, w.up.count())

	// An upstream that reports more than the limit: charged, and the event
	// shows the cost above the reservation.
	verbose := `{"model":"verbose","max_tokens":10,"messages":[]}`
	status, _ := w.postJSON(t, "/v1/chat/completions", key, verbose)
	require.Equal(t, 200, status)

	events := w.usageEvents(t, "ann")
	require.Len(t, events, 5)
	reserved := map[int64]usageEvent{}
	for _, e := range events {
		reserved[e.reserved] = e
	}
	// The non-ASCII chat: every byte of the body is a token of input.
	require.Contains(t, reserved, int64(costOf(int64(len(chat))+3+4, 100)), "%+v", events)
	over, ok := reserved[int64(costOf(int64(len(verbose))+3, 10))]
	require.True(t, ok, "%+v", events)
	require.Equal(t, int64(costOf(fakePrompt, 500)), over.cost)
	require.Greater(t, over.cost, over.reserved)
	w.b.AssertConsistent(t)
}

// Defect 3: a user who cannot afford the route's cap gets the output they
// can afford (sent upstream as the limit), down to min_output_tokens.
func TestAffordableOutputIsReservedAndSent(t *testing.T) {
	w := setupChecks(t)
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	input := int64(len(body)) + 3 + 4
	sentLimit := func() int64 {
		var got struct {
			Max int64 `json:"max_completion_tokens"`
		}
		require.NoError(t, json.Unmarshal(w.up.last(t).body, &got))
		return got.Max
	}

	small := w.user(t, "small", costOf(input, 40))
	status, e := w.postJSON(t, "/v1/chat/completions", small, body)
	require.Equal(t, 200, status, "%+v", e)
	require.Equal(t, int64(40), sentLimit())
	require.Equal(t, int64(costOf(input, 40)), w.usageEvents(t, "small")[0].reserved)

	reached := w.up.count()
	tiny := w.user(t, "tiny", costOf(input, 15))
	status, e = w.postJSON(t, "/v1/chat/completions", tiny, body)
	require.Equal(t, 402, status, "below min_output_tokens (16)")
	require.Equal(t, "insufficient_credits", e.Error.Code)
	require.Equal(t, reached, w.up.count())

	// Many at once: each reservation is atomic, so however they interleave
	// nothing is over-reserved and every limit sent is one that was paid.
	start := 2*costOf(input, 100) + costOf(input, 50)
	crowd := w.user(t, "crowd", start)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := w.postJSON(t, "/v1/chat/completions", crowd, body)
			mu.Lock()
			codes[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, 12, codes[200]+codes[402], "%v", codes)
	require.GreaterOrEqual(t, codes[200], 3)
	require.Equal(t, start-metering.Credits(codes[200])*costOf(fakePrompt, fakeCompletion), w.settled(t, "crowd"))
	for _, e := range w.usageEvents(t, "crowd") {
		require.GreaterOrEqual(t, e.reserved, int64(costOf(input, 16)))
		require.LessOrEqual(t, e.reserved, int64(costOf(input, 100)))
	}
	w.b.AssertConsistent(t)
}
