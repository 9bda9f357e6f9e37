package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

const sseStream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}],\"usage\":null}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}],\"usage\":null}\n\n" +
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n" +
	"data: [DONE]\n\n"

// writeInPieces writes s to w in pieces of n bytes, flushing after each,
// as reverse_proxy does with a stream.
func writeInPieces(w http.ResponseWriter, s string, n int) {
	for len(s) > 0 {
		k := min(n, len(s))
		w.Write([]byte(s[:k]))
		w.(http.Flusher).Flush()
		s = s[k:]
	}
}

func TestCaptureSSE(t *testing.T) {
	t.Parallel()
	for _, piece := range []int{1, 7, 64, len(sseStream)} {
		for _, drop := range []bool{false, true} {
			rec := httptest.NewRecorder()
			c := &capture{ResponseWriter: rec, dropUsageChunk: drop}
			c.Header().Set("Content-Type", "text/event-stream")
			writeInPieces(c, sseStream, piece)
			c.finishSSE()
			require.True(t, rec.Flushed)
			require.True(t, c.usage.found)
			require.Equal(t, int64(12), c.usage.inputTokens)
			require.Equal(t, int64(3), c.usage.outputTokens)
			require.Equal(t, int64(len("Hello world")), c.streamedBytes)
			require.True(t, c.done)
			want := sseStream
			if drop {
				want = strings.Replace(sseStream, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n", "", 1)
			}
			require.Equal(t, want, rec.Body.String(), "piece %d drop %v", piece, drop)
			require.Equal(t, int64(len(want)), c.written)
		}
	}
}

func TestCaptureSSEPassesCompleteEventsAtOnce(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	c := &capture{ResponseWriter: rec, dropUsageChunk: true}
	c.Header().Set("Content-Type", "text/event-stream")
	c.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"cho"))
	require.Equal(t, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", rec.Body.String())
	c.Write([]byte("ices\":[{\"text\":\"bc\"}]}\r\n\r\n"))
	require.Equal(t, int64(3), c.streamedBytes)
	require.Contains(t, rec.Body.String(), "bc")
	// A last event without its blank line is still passed on.
	c.Write([]byte("data: [DONE]"))
	c.finishSSE()
	require.True(t, strings.HasSuffix(rec.Body.String(), "data: [DONE]\n"))
	require.False(t, c.usage.found)
}

func TestCaptureResponsesStream(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	c := &capture{ResponseWriter: rec}
	c.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	c.Write([]byte("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"abcd\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}}\n\n"))
	require.Equal(t, int64(4), c.streamedBytes)
	require.Equal(t, usageInfo{found: true, inputTokens: 5, outputTokens: 2}, c.usage)
}

func TestCaptureJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		want       usageInfo
	}{
		{"chat", `{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}`,
			usageInfo{found: true, inputTokens: 10, outputTokens: 20}},
		{"embeddings", `{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":8,"total_tokens":8}}`,
			usageInfo{found: true, inputTokens: 8, images: 1, hasImages: true}},
		{"transcription duration usage", `{"text":"hi","usage":{"type":"duration","seconds":7}}`,
			usageInfo{found: true, audioMillis: 7000}},
		{"transcription tokens usage", `{"text":"hi","usage":{"type":"tokens","input_tokens":14,"output_tokens":3}}`,
			usageInfo{found: true, inputTokens: 14, outputTokens: 3}},
		{"verbose duration", `{"text":"hi","duration":8.4701}`, usageInfo{found: true, audioMillis: 8471}},
		{"images", `{"created":1,"data":[{"url":"a"},{"url":"b"}]}`, usageInfo{images: 2, hasImages: true}},
		{"no usage", `{"ok":true}`, usageInfo{}},
		{"empty usage", `{"usage":{}}`, usageInfo{}},
		{"not json", `oops`, usageInfo{}},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		cw := &capture{ResponseWriter: rec}
		cw.Header().Set("Content-Type", "application/json")
		cw.WriteHeader(200)
		writeInPieces(cw, c.body, 5)
		cw.finishJSON()
		require.Equal(t, c.want, cw.usage, c.name)
		require.Equal(t, c.body, rec.Body.String(), c.name)
	}
}

func TestCaptureLargeJSONKeepsTail(t *testing.T) {
	t.Parallel()
	vec := make([]float64, 1_000_000)
	for i := range vec {
		vec[i] = 0.123456789
	}
	body, _ := json.Marshal(map[string]any{"data": []any{map[string]any{"embedding": vec}}, "usage": map[string]int{"prompt_tokens": 77, "total_tokens": 77}})
	require.Greater(t, len(body), maxJSONCapture)
	rec := httptest.NewRecorder()
	c := &capture{ResponseWriter: rec}
	c.Header().Set("Content-Type", "application/json")
	writeInPieces(c, string(body), 32<<10)
	c.finishJSON()
	require.LessOrEqual(t, cap(c.body), 2*maxJSONCapture)
	require.Equal(t, int64(77), c.usage.inputTokens)
	require.Equal(t, len(body), rec.Body.Len())
}

func TestCaptureCostHeaderAndStatus(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	c := &capture{ResponseWriter: rec, costHeader: "X-Cost"}
	c.Header().Set("X-Cost", "0.25")
	c.WriteHeader(103)
	c.WriteHeader(502)
	c.WriteHeader(200)
	require.Equal(t, 502, c.status)
	require.Equal(t, "0.25", c.cost)
	var _ http.Flusher = c
	require.Equal(t, http.ResponseWriter(rec), c.Unwrap())
}

func TestSecondsToMillis(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "8": 8000, "8.47": 8470, "8.4701": 8471, "0.0005": 1, "12.000": 12000} {
		got, ok := secondsToMillis(json.Number(in))
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "1e3", "abc", "1.2.3", "9999999999"} {
		_, ok := secondsToMillis(json.Number(in))
		require.False(t, ok, in)
	}
}

// The settled balance goes out as an SSE comment before [DONE] (once, and
// only when the settlement came in time), and after the Responses API's
// final event; the stream loses no byte of its own.
func TestCaptureSettledBalanceComment(t *testing.T) {
	t.Parallel()
	responses := "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}}\n\n"
	for _, c := range []struct {
		name, stream string
		settled      bool
		want         string
	}{
		{"chat", sseStream + "data: [DONE]\n\n", true,
			strings.Replace(sseStream, "data: [DONE]\n\n", ": credits-remaining 1.5\n\ndata: [DONE]\n\n", 1) + "data: [DONE]\n\n"},
		{"chat, not settled in time", sseStream, false, sseStream},
		{"responses", responses, true, responses + ": credits-remaining 1.5\n\n"},
	} {
		for _, piece := range []int{1, 9, len(c.stream)} {
			rec := httptest.NewRecorder()
			calls := 0
			cw := &capture{ResponseWriter: rec, atStreamEnd: func() (metering.Credits, bool) {
				calls++
				return 3 * metering.Micro / 2, c.settled
			}}
			cw.Header().Set("Content-Type", "text/event-stream")
			cw.Header().Set("Content-Length", "999")
			cw.WriteHeader(200)
			writeInPieces(cw, c.stream, piece)
			cw.finishSSE()
			require.Equal(t, c.want, rec.Body.String(), c.name)
			require.Equal(t, 1, calls, c.name)
			require.Empty(t, rec.Header().Get("Content-Length"), "the body grows: no length")
		}
	}
}

// A held JSON response writes nothing, flushes included, until sendHeld,
// which sets the settled balance; one that outgrows maxJSONCapture goes
// out at once, head first, with the balance it had.
func TestCaptureHoldsJSON(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	c := &capture{ResponseWriter: rec, holdJSON: true}
	c.Header().Set("Content-Type", "application/json")
	c.Header().Set("X-Credits-Remaining", "9")
	c.WriteHeader(201)
	c.Write([]byte(`{"usage":{"prompt_tokens":3,`))
	c.Flush()
	c.Write([]byte(`"completion_tokens":4}}`))
	require.False(t, rec.Flushed)
	require.Zero(t, rec.Body.Len())
	require.True(t, c.holding)
	c.finishJSON()
	require.Equal(t, usageInfo{found: true, inputTokens: 3, outputTokens: 4}, c.usage)
	require.NoError(t, c.sendHeld(7*metering.Micro, true))
	require.Equal(t, 201, rec.Code)
	require.Equal(t, "7", rec.Header().Get("X-Credits-Remaining"))
	require.Equal(t, `{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, rec.Body.String())

	rec = httptest.NewRecorder()
	c = &capture{ResponseWriter: rec, holdJSON: true}
	c.Header().Set("Content-Type", "application/json")
	c.Header().Set("X-Credits-Remaining", "9")
	c.WriteHeader(200)
	big := strings.Repeat("x", 64<<10)
	for i := 0; i < maxJSONCapture/len(big); i++ {
		c.Write([]byte(big))
	}
	require.True(t, c.holding, "exactly maxJSONCapture is held")
	c.Write([]byte("y"))
	require.False(t, c.holding)
	require.Equal(t, maxJSONCapture+1, rec.Body.Len())
	require.Equal(t, "9", rec.Header().Get("X-Credits-Remaining"))

	for _, length := range []string{"4194305", "x"} {
		c = &capture{ResponseWriter: httptest.NewRecorder(), holdJSON: true}
		c.Header().Set("Content-Type", "application/json")
		c.Header().Set("Content-Length", length)
		c.WriteHeader(200)
		require.False(t, c.holding, "Content-Length %s", length)
	}
}
