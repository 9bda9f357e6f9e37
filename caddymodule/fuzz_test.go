package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// Fuzz targets, seeded (testdata/fuzz/...) with OpenAI request bodies and
// stream transcripts of every endpoint the gateway prices. Run one with
// go test ./caddymodule -run '^$' -fuzz FuzzEstimate -fuzztime 1m

var fuzzKinds = []endpoint{epChat, epCompletions, epEmbeddings, epResponses, epSpeech, epTranscription, epImages, epGeneric}

// allocated is how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzEstimate checks, for any body the estimator accepts: memory bounded
// by the body's size; the upstream body is valid JSON (or a form Go
// parses) that the estimator reads the same way again; Go's
// encoding/json, which matches keys case-insensitively and keeps the last
// duplicate, reads the same model, limits and choices from it; and the
// input reserved covers every byte of text in it.
func FuzzEstimate(f *testing.F) {
	f.Fuzz(func(t *testing.T, kindByte uint8, contentType string, body []byte) {
		kind := fuzzKinds[int(kindByte)%len(fuzzKinds)]
		cfg := estimateConfig{MaxOutputTokens: 100, ImageTokens: 50, AudioSeconds: 30}
		var est *estimate
		var err error
		if n := allocated(func() { est, err = estimateRequest(kind, contentType, body, cfg) }); n > uint64(16*len(body)+1<<20) {
			t.Fatalf("%d bytes allocated for a body of %d", n, len(body))
		}
		if err != nil {
			var re *requestError
			var se *syntaxError
			if !errors.As(err, &re) && !errors.As(err, &se) {
				t.Fatalf("an error that is not a 400: %T %v", err, err)
			}
			return
		}
		if est.adjustable() {
			est.setPerChoice(min(est.perChoice, 7)) // as an affordable reservation would
		}
		up := est.upstreamBody()
		if up == nil {
			up = est.body
		}
		if est.contentType != "" {
			checkForm(t, est, up)
			return
		}
		if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
			return
		}
		if !json.Valid(up) {
			t.Fatalf("the upstream body is not JSON: %q", up)
		}
		if len(up) > len(body)+128 {
			t.Fatalf("the upstream body grew by %d bytes", len(up)-len(body))
		}
		again, err := estimateRequest(kind, "application/json", up, cfg)
		if err != nil {
			t.Fatalf("the upstream body is refused: %v\n%q", err, up)
		}
		if again.Model != est.Model || again.Units.OutputTokens != est.Units.OutputTokens ||
			again.Units.Images != est.Units.Images || again.Stream != est.Stream || again.limitField != "" ||
			again.Units.InputTokens < est.Units.InputTokens || again.Units.InputTokens > est.Units.InputTokens+int64(len(up)-len(body)) {
			t.Fatalf("read differently upstream:\n%+v\n%+v\n%q", est, again, up)
		}
		if est.Stream && !again.ClientWantsUsage {
			t.Fatalf("a stream without include_usage upstream: %q", up)
		}
		checkGoReads(t, kind, est, up)
		if text := textBytes(t, body); est.Units.InputTokens < text {
			t.Fatalf("input %d tokens, below the %d bytes of text in %q", est.Units.InputTokens, text, body)
		}
	})
}

// checkGoReads decodes the upstream body as a Go upstream would and
// compares what it reads with the estimate.
func checkGoReads(t *testing.T, kind endpoint, est *estimate, up []byte) {
	var req struct {
		Model               any `json:"model"`
		MaxTokens           any `json:"max_tokens"`
		MaxCompletionTokens any `json:"max_completion_tokens"`
		MaxOutputTokens     any `json:"max_output_tokens"`
		N                   any `json:"n"`
		BestOf              any `json:"best_of"`
		Stream              any `json:"stream"`
	}
	dec := json.NewDecoder(bytes.NewReader(up))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("Go cannot decode the upstream body: %v", err)
	}
	if m, _ := req.Model.(string); m != est.Model {
		t.Fatalf("Go reads model %q, the estimate %q", m, est.Model)
	}
	num := func(v any) int64 {
		n, _ := v.(json.Number)
		i, _ := n.Int64()
		return i
	}
	var limit, choices int64
	switch kind {
	case epChat:
		limit, choices = max(num(req.MaxTokens), num(req.MaxCompletionTokens)), max(1, num(req.N))
	case epCompletions:
		limit, choices = num(req.MaxTokens), max(1, num(req.N), num(req.BestOf))
	case epResponses:
		limit, choices = num(req.MaxOutputTokens), 1
	default:
		return
	}
	if limit*choices != est.Units.OutputTokens {
		t.Fatalf("Go reads a limit of %d × %d, the estimate reserves %d: %q", limit, choices, est.Units.OutputTokens, up)
	}
	if s, _ := req.Stream.(bool); (kind == epChat || kind == epCompletions) && s != est.Stream {
		t.Fatalf("Go reads stream %v, the estimate %v", s, est.Stream)
	}
}

// textBytes is the bytes of every string in a JSON document as Go decodes
// it, keys included, except the data of image parts (which are reserved
// at image_tokens each).
func textBytes(t *testing.T, doc []byte) int64 {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(v any) int64
	walk = func(v any) int64 {
		switch v := v.(type) {
		case string:
			return int64(len(v))
		case []any:
			var n int64
			for _, e := range v {
				n += walk(e)
			}
			return n
		case map[string]any:
			var n int64
			typ, _ := v["type"].(string)
			for k, e := range v {
				if k == "image_url" && (typ == "image_url" || typ == "input_image") {
					continue
				}
				n += int64(len(k)) + walk(e)
			}
			return n
		}
		return 0
	}
	return walk(v)
}

// checkForm parses a rebuilt multipart body as Go's net/http does.
func checkForm(t *testing.T, est *estimate, up []byte) {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(up))
	r.Header.Set("Content-Type", est.contentType)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		t.Fatalf("Go cannot parse the rebuilt form: %v", err)
	}
	models := r.MultipartForm.Value["model"]
	if est.Model == "" && len(models) != 0 || est.Model != "" && (len(models) != 1 || models[0] != est.Model) {
		t.Fatalf("Go reads models %q, the estimate %q", models, est.Model)
	}
	for name := range r.MultipartForm.Value {
		if name != "model" && strings.EqualFold(name, "model") {
			t.Fatalf("a case variant of model upstream: %q", name)
		}
	}
}

// FuzzCaptureSSE writes a stream through the capture in random pieces and
// checks: the client gets the stream unchanged except for whole events
// removed, each of them the usage-only chunk the gateway asked for (and
// none when it did not); the same whatever the pieces; the capture holds
// at most one event's worth; the text counted is within what was sent.
func FuzzCaptureSSE(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64, drop bool) {
		out, c := captureStream(t, stream, seed, drop)
		whole, _ := captureStream(t, stream, 0, drop)
		if out != whole {
			t.Fatalf("the pieces changed the output:\n%q\n%q", out, whole)
		}
		if c.streamedBytes > int64(len(stream)) {
			t.Fatalf("%d bytes of text counted in a stream of %d", c.streamedBytes, len(stream))
		}
		// Align the output with the stream's events; what is missing
		// must be a usage chunk, dropped on request.
		rest := out
		for _, ev := range sseEvents(stream) {
			if strings.HasPrefix(rest, ev) {
				rest = rest[len(ev):]
				continue
			}
			if !drop || !isUsageChunk(ev) {
				t.Fatalf("event %q missing from the output %q", ev, out)
			}
		}
		if rest != "" && rest != "\n" { // finishSSE ends a last event cut short
			t.Fatalf("unexpected output left: %q", rest)
		}
	})
}

// captureStream writes stream into a capture in pieces chosen by seed (0:
// one write) and returns what the client received.
func captureStream(t *testing.T, stream []byte, seed uint64, drop bool) (string, *capture) {
	rec := httptest.NewRecorder()
	c := &capture{ResponseWriter: rec, dropUsageChunk: drop}
	c.Header().Set("Content-Type", "text/event-stream")
	c.WriteHeader(http.StatusOK)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	for p := stream; len(p) > 0; {
		n := len(p)
		if seed != 0 {
			n = 1 + rng.IntN(min(len(p), 1<<12))
		}
		if _, err := c.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		if len(c.pending) > maxSSEEvent+n {
			t.Fatalf("the capture holds %d bytes", len(c.pending))
		}
		p = p[n:]
	}
	c.finishSSE()
	return rec.Body.String(), c
}

// sseEvents splits a stream into events as the SSE format defines them: a
// run of lines (ended by \n, \r\n) up to and including a blank line; the
// rest, without one, is the last event.
func sseEvents(stream []byte) []string {
	var events []string
	start, at := 0, 0
	for at < len(stream) {
		i := bytes.IndexByte(stream[at:], '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimRight(stream[at:at+i], "\r")
		at += i + 1
		if len(line) == 0 {
			events = append(events, string(stream[start:at]))
			start = at
		}
	}
	if start < len(stream) {
		events = append(events, string(stream[start:]))
	}
	return events
}

// isUsageChunk: a data payload with "choices": [] and a usage object, at
// most maxSSEEvent long.
func isUsageChunk(ev string) bool {
	if len(ev) > maxSSEEvent {
		return false
	}
	var data []string
	for _, line := range strings.Split(ev, "\n") {
		if d, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "data:"); ok {
			data = append(data, strings.TrimPrefix(d, " "))
		}
	}
	var ch struct {
		Choices *[]json.RawMessage `json:"choices"`
		Usage   *json.RawMessage   `json:"usage"`
	}
	return json.Unmarshal([]byte(strings.Join(data, "\n")), &ch) == nil && ch.Choices != nil && len(*ch.Choices) == 0 &&
		ch.Usage != nil && string(*ch.Usage) != "null"
}
