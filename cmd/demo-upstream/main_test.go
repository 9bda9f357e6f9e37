package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(&handler{})
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, path, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestChatCompletionJSON(t *testing.T) {
	srv := newServer(t)
	resp := post(t, srv, "/v1/chat/completions",
		`{"model":"demo","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello there world"}]}]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var got completion
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.Object != "chat.completion" || got.Model != "demo" || !strings.HasPrefix(got.ID, "chatcmpl-") {
		t.Fatalf("unexpected envelope: %+v", got)
	}
	if len(got.Choices) != 1 || got.Choices[0].Message.Role != "assistant" ||
		got.Choices[0].Message.Content != reply || got.Choices[0].FinishReason != "stop" {
		t.Fatalf("unexpected choices: %+v", got.Choices)
	}
	wantCompletion := len(strings.Fields(reply))
	if got.Usage.PromptTokens != 5 || got.Usage.CompletionTokens != wantCompletion ||
		got.Usage.TotalTokens != 5+wantCompletion {
		t.Fatalf("usage %+v, want prompt 5, completion %d", got.Usage, wantCompletion)
	}
}

// readEvents returns the data payloads of an SSE body, checking the framing.
func readEvents(t *testing.T, body io.Reader) []string {
	t.Helper()
	var events []string
	sc := bufio.NewScanner(body)
	expectBlank := false
	for sc.Scan() {
		line := sc.Text()
		if expectBlank {
			if line != "" {
				t.Fatalf("want a blank line after each event, got %q", line)
			}
			expectBlank = false
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		events = append(events, data)
		expectBlank = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream must end with data: [DONE], got %q", events)
	}
	return events[:len(events)-1]
}

func TestChatCompletionStream(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		name := "without_usage"
		body := `{"model":"m1","stream":true,"messages":[{"role":"user","content":"one two three"}]}`
		if includeUsage {
			name = "with_usage"
			body = `{"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}`
		}
		t.Run(name, func(t *testing.T) {
			srv := newServer(t)
			resp := post(t, srv, "/v1/chat/completions", body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("Content-Type %q", ct)
			}
			events := readEvents(t, resp.Body)
			var text strings.Builder
			var finish string
			var usages []usage
			for i, ev := range events {
				var c struct {
					ID      string `json:"id"`
					Object  string `json:"object"`
					Model   string `json:"model"`
					Choices []struct {
						Delta        delta   `json:"delta"`
						FinishReason *string `json:"finish_reason"`
					} `json:"choices"`
					Usage *usage `json:"usage"`
				}
				if err := json.Unmarshal([]byte(ev), &c); err != nil {
					t.Fatalf("event %d is not JSON: %v: %s", i, err, ev)
				}
				if c.Object != "chat.completion.chunk" || c.Model != "m1" || c.ID == "" {
					t.Fatalf("event %d: bad envelope %s", i, ev)
				}
				if i == 0 && (len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant") {
					t.Fatalf("first chunk should carry the assistant role: %s", ev)
				}
				var raw map[string]json.RawMessage
				_ = json.Unmarshal([]byte(ev), &raw)
				if _, has := raw["usage"]; has != includeUsage {
					t.Fatalf("event %d: usage field present=%v, want %v: %s", i, has, includeUsage, ev)
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
					if ch.FinishReason != nil {
						finish = *ch.FinishReason
					}
				}
				if c.Usage != nil {
					if len(c.Choices) != 0 || i != len(events)-1 {
						t.Fatalf("usage must come in a last chunk with no choices: %s", ev)
					}
					usages = append(usages, *c.Usage)
				}
			}
			if text.String() != reply {
				t.Fatalf("streamed text %q, want %q", text.String(), reply)
			}
			if finish != "stop" {
				t.Fatalf("finish_reason %q, want stop", finish)
			}
			if !includeUsage {
				if len(usages) != 0 {
					t.Fatalf("usage sent without include_usage")
				}
				return
			}
			n := len(strings.Fields(reply))
			if len(usages) != 1 || usages[0] != (usage{PromptTokens: 3, CompletionTokens: n, TotalTokens: 3 + n}) {
				t.Fatalf("usage chunks %+v", usages)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	srv := newServer(t)
	for _, body := range []string{`{`, `{"messages":[]}`} {
		resp := post(t, srv, "/v1/chat/completions", body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: status %d, want 400", body, resp.StatusCode)
		}
		var e struct {
			Error struct {
				Code, Type, Message string
			} `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error.Message == "" {
			t.Fatalf("%s: want an OpenAI-style error, got %v %+v", body, err, e)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET chat/completions: status %d, want 405", resp.StatusCode)
	}
}

func TestModelsBenchAndEcho(t *testing.T) {
	srv := newServer(t)
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: not JSON: %v", path, err)
		}
		return resp.StatusCode, m
	}
	code, m := get("/v1/models")
	data, _ := m["data"].([]any)
	if code != 200 || m["object"] != "list" || len(data) != 1 || data[0].(map[string]any)["id"] != "demo" {
		t.Fatalf("/v1/models: %d %v", code, m)
	}
	code, m = get("/bench")
	if code != 200 || len(m) != 1 || m["ok"] != true {
		t.Fatalf("/bench: %d %v", code, m)
	}
	code, m = get("/v1/files?x=1")
	if code != 200 || m["ok"] != true || m["path"] != "/v1/files" {
		t.Fatalf("echo: %d %v", code, m)
	}
}

func BenchmarkBench(b *testing.B) {
	h := &handler{}
	req := httptest.NewRequest(http.MethodGet, "/bench", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(discardWriter{hdr: http.Header{}}, req)
	}
}

type discardWriter struct{ hdr http.Header }

func (d discardWriter) Header() http.Header         { return d.hdr }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}
