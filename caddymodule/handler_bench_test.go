package caddymodule

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkHandler measures the gateway's own cost per metered request:
// the real metering handler against a real engine (Redis, Postgres) with
// a trivial next handler, on a fixed-cost route and on a route priced by
// model (a small chat body: estimate, reserve, capture, settle).
//
// allocs/op is what the issue's row "gateway allocations per metered
// request" reports. The request, its Replacer and the response writer are
// built once and reset between iterations (as Caddy's server reuses its
// own per connection), so what is counted is the handler and metering, not
// the benchmark's scaffolding. The "+metrics" runs count into the
// Prometheus metrics as a gateway does (metrics.go): their difference to
// the plain runs is what metrics cost per request.
//
//	go test ./caddymodule/ -run '^$' -bench BenchmarkHandler -benchtime 2000x -count 3
func BenchmarkHandler(b *testing.B) {
	w := meteringtest.New(b, meteringtest.Options{})
	ctx := context.Background()
	_, err := w.Engine.PutPrice(ctx, "bench", metering.Price{Model: "m", InputPerMillion: metering.Micro, OutputPerMillion: 2 * metering.Micro})
	require.NoError(b, err)
	_, key, err := w.Engine.CreateUser(ctx, "bench", metering.UserSpec{Username: "u", InitialCredits: metering.MaxCredits / 2})
	require.NoError(b, err)

	counted := w.Config
	counted.Metrics = metering.NewMetrics()
	countingEngine, err := metering.NewEngine(w.Redis, w.DB, counted)
	require.NoError(b, err)
	b.Cleanup(countingEngine.Close)
	fixed, fixedCounted := &Handler{}, &Handler{}
	priced, pricedCounted := &Handler{PriceBy: "model"}, &Handler{PriceBy: "model"}
	for _, h := range []*Handler{fixed, fixedCounted, priced, pricedCounted} {
		require.NoError(b, h.provisionSettings())
		h.engine, h.log = w.Engine, zap.NewNop()
	}
	for _, h := range []*Handler{fixedCounted, pricedCounted} {
		h.engine, h.metrics = countingEngine, requestMetricsFor(false)
	}

	okBody := []byte(`{"ok":true}`)
	chatAnswer := []byte(`{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi."},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	chatBody := []byte(`{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"Say hi."}]}`)

	for _, c := range []struct {
		name   string
		h      *Handler
		method string
		path   string
		body   []byte
		answer []byte
	}{
		{"fixed", fixed, "GET", "/v1/models", nil, okBody},
		{"fixed+metrics", fixedCounted, "GET", "/v1/models", nil, okBody},
		{"priced", priced, "POST", "/v1/chat/completions", chatBody, chatAnswer},
		{"priced+metrics", pricedCounted, "POST", "/v1/chat/completions", chatBody, chatAnswer},
	} {
		b.Run(c.name, func(b *testing.B) {
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				if r.Body != nil {
					_, _ = io.Copy(io.Discard, r.Body)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, err := w.Write(c.answer)
				return err
			})
			req := newBenchRequest(c.method, c.path, key)
			rw := &benchResponseWriter{header: http.Header{}}
			serve := func() {
				req.reset(c.body)
				rw.reset()
				if err := c.h.ServeHTTP(rw, req.r, next); err != nil {
					b.Fatal(err)
				}
				if rw.status != http.StatusOK {
					b.Fatalf("status %d", rw.status)
				}
			}
			serve() // warm the key cache and the price cache
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				serve()
			}
			b.StopTimer()
			require.NoError(b, w.Engine.WaitForRepairs(ctx))
			time.Sleep(20 * time.Millisecond) // the flusher's last detached release
		})
	}
}

// benchRequest is one request reused across iterations: the handler
// rewrites its headers and body, so reset puts them back.
type benchRequest struct {
	r                 *http.Request
	header            http.Header
	auth, contentType []string // built once: the handler only deletes them
	body              *bytes.Reader
	bodyCloser        io.ReadCloser // body, as a request body
}

func newBenchRequest(method, path, key string) *benchRequest {
	u, _ := url.Parse("http://gateway" + path)
	repl := caddy.NewReplacer()
	r := (&http.Request{Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "gateway",
		Header: http.Header{}}).WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl))
	rd := bytes.NewReader(nil)
	return &benchRequest{r: r, header: r.Header, auth: []string{"Bearer " + key}, contentType: []string{"application/json"},
		body: rd, bodyCloser: io.NopCloser(rd)}
}

func (q *benchRequest) reset(body []byte) {
	clear(q.header)
	q.r.Header = q.header
	q.header["Authorization"] = q.auth
	q.r.ContentLength = int64(len(body))
	if body == nil {
		q.r.Body = http.NoBody
		return
	}
	q.header["Content-Type"] = q.contentType
	q.body.Reset(body)
	q.r.Body = q.bodyCloser
}

// benchResponseWriter discards the response, keeping its status.
type benchResponseWriter struct {
	header http.Header
	status int
}

func (w *benchResponseWriter) Header() http.Header { return w.header }
func (w *benchResponseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *benchResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}
func (w *benchResponseWriter) reset() {
	clear(w.header)
	w.status = 0
}
