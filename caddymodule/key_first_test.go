package caddymodule

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// countingBody is a request body of n bytes (a small JSON object padded
// with spaces) that counts what the handler reads of it.
type countingBody struct {
	prefix  string
	n, read int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), c.n-c.read))
	for i := range k {
		if at := c.read + int64(i); at < int64(len(c.prefix)) {
			p[i] = c.prefix[at]
		} else {
			p[i] = ' '
		}
	}
	c.read += int64(k)
	return k, nil
}

func (c *countingBody) Close() error { return nil }

// Defect 4: on a priced route the key is resolved before a byte of the
// body is read: an unknown, inactive or expired key costs no memory. And
// JSON bodies are bounded at 4 MiB by default, uploads at 25 MiB.
func TestKeyCheckedBeforeTheBodyIsRead(t *testing.T) {
	clock := meteringtest.NewClock(time.Now())
	b := meteringtest.New(t, meteringtest.Options{Clock: clock})
	ctx := context.Background()
	p := metering.Price{Model: "m", InputPerMillion: 1, OutputPerMillion: 1}
	_, err := b.Engine.PutPrice(ctx, "test", p)
	require.NoError(t, err)
	h := &Handler{PriceBy: "model"}
	require.NoError(t, h.provisionVariableCost())
	h.engine, h.log, h.lease = b.Engine, zap.NewNop(), time.Minute
	var nextCalls int
	next := func(w http.ResponseWriter, r *http.Request) error {
		nextCalls++
		w.WriteHeader(200)
		return nil
	}

	serve := func(key, contentType string, size int64) (int, int64) {
		t.Helper()
		body := &countingBody{prefix: `{"model":"m","max_tokens":1,"messages":[]}`, n: size}
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		r.Body, r.ContentLength = body, -1 // as a chunked upload: no length to refuse by
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		require.NoError(t, h.ServeHTTP(rec, r, caddyhttp.HandlerFunc(next)))
		return rec.Code, body.read
	}

	unknown, err := metering.NewAPIKey()
	require.NoError(t, err)
	_, inactive, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "gone", InitialCredits: metering.Micro})
	require.NoError(t, err)
	_, err = b.Engine.SetUserActive(ctx, "test", "gone", false)
	require.NoError(t, err)
	soon := clock.Now().Add(time.Hour)
	_, expired, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "old", InitialCredits: metering.Micro, KeyExpiresAt: &soon})
	require.NoError(t, err)
	_, valid, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: metering.Micro})
	require.NoError(t, err)

	// The expired key worked until it expired (so the gateway had it cached).
	code, _ := serve(expired, "application/json", 100)
	require.Equal(t, 200, code)
	clock.Set(soon.Add(time.Second))

	for name, key := range map[string]string{"unknown": unknown, "inactive": inactive, "expired": expired} {
		for range 2 { // a cache miss, then the cache
			code, read := serve(key, "application/json", 24<<20)
			require.Equal(t, 401, code, name)
			require.Zero(t, read, "%s key: the body was read", name)
		}
	}
	require.Equal(t, 1, nextCalls)

	code, read := serve(valid, "application/json", 1<<20)
	require.Equal(t, 200, code)
	require.Equal(t, int64(1<<20), read)

	code, read = serve(valid, "application/json", 5<<20)
	require.Equal(t, 413, code, "JSON bodies: 4 MiB")
	require.LessOrEqual(t, read, int64(4<<20)+1)

	code, read = serve(valid, "multipart/form-data; boundary=x", 20<<20)
	require.Equal(t, 400, code, "an upload may be larger (this one is not a valid form)")
	require.Equal(t, int64(20<<20), read)
	require.Equal(t, 2, nextCalls)
}
