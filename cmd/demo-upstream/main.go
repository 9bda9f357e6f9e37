// Command demo-upstream is a tiny OpenAI-style fake upstream for Tollgate's
// quick start and benchmark. It needs nothing but the standard library.
// Every answer reports its usage as OpenAI does, counting words as tokens.
//
//	POST /v1/chat/completions    a canned chat.completion with usage; with
//	                             "stream": true, SSE chunks ending in [DONE]
//	                             (plus a usage chunk when
//	                             stream_options.include_usage is true)
//	POST /v1/embeddings          a stable vector per input (8 dimensions
//	                             unless "dimensions" says), float or base64
//	POST /v1/audio/speech        a WAV tone as long as the text takes to read
//	POST /v1/audio/transcriptions, /v1/audio/translations
//	                             a canned text and the audio's duration as
//	                             usage (WAV measured, other files at 128 kbit/s)
//	POST /v1/images/generations, /v1/images/edits, /v1/images/variations
//	                             n small PNGs with gpt-image-1's usage
//	GET  /v1/models              lists the model "demo"
//	     /bench                  {"ok":true}, as cheap as possible
//	     anything else           {"ok":true,"method":...,"path":...}
//
// It logs nothing per request.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// reply is the canned assistant answer; its words are the completion tokens.
const reply = "Hello from the Tollgate demo upstream! This answer is canned, and its usage is counted in words."

// maxBody bounds what a request body may be.
const maxBody = 4 << 20

var (
	benchBody        = []byte(`{"ok":true}` + "\n")
	jsonContentType  = []string{"application/json"}
	benchContentLen  = []string{strconv.Itoa(len(benchBody))}
	modelsBody       = []byte(`{"object":"list","data":[{"id":"demo","object":"model","created":1700000000,"owned_by":"tollgate"}]}` + "\n")
	completionSerial atomic.Uint64
)

func main() {
	def := os.Getenv("TOLLGATE_UPSTREAM")
	if def == "" {
		def = "127.0.0.1:9090"
	}
	listen := flag.String("listen", def, "address to listen on (host:port); default from TOLLGATE_UPSTREAM")
	delay := flag.Duration("stream-delay", 0, "pause between streamed chunks (e.g. 50ms), to watch streaming")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("demo-upstream: %v", err)
	}
	srv := &http.Server{
		Handler:           &handler{streamDelay: *delay},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Nothing is logged per request, not even the server's own complaints
		// about broken client connections.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	log.Printf("demo-upstream: listening on http://%s", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("demo-upstream: %v", err)
	}
}

type handler struct {
	streamDelay time.Duration
}

// posts are the endpoints answered to POST (and only to POST).
var posts = map[string]func(*handler, http.ResponseWriter, *http.Request){
	"/v1/chat/completions":     (*handler).chatCompletions,
	"/v1/embeddings":           (*handler).embeddings,
	"/v1/audio/speech":         (*handler).speech,
	"/v1/audio/transcriptions": (*handler).transcription,
	"/v1/audio/translations":   (*handler).transcription,
	"/v1/images/generations":   (*handler).images,
	"/v1/images/edits":         (*handler).images,
	"/v1/images/variations":    (*handler).images,
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/bench":
		// The benchmark's fast path: no allocation beyond what net/http does.
		hdr := w.Header()
		hdr["Content-Type"] = jsonContentType
		hdr["Content-Length"] = benchContentLen
		_, _ = w.Write(benchBody)
		return
	case "/v1/models":
		w.Header()["Content-Type"] = jsonContentType
		_, _ = w.Write(modelsBody)
		return
	}
	serve, ok := posts[r.URL.Path]
	switch {
	case !ok:
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "method": r.Method, "path": r.URL.Path})
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
	default:
		serve(h, w, r)
	}
}

// readJSON decodes a JSON body of at most maxBody bytes into v; when it
// cannot, it answers the error and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "cannot read the request body")
		return false
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request body too large")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

// modelOr is the model a request named, "demo" when it named none.
func modelOr(m string) string {
	if m == "" {
		return "demo"
	}
	return m
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type choice struct {
	Index        int     `json:"index"`
	Message      message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   usage    `json:"usage"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	// Usage is present on every chunk when the client asked for usage: null,
	// and filled in on the last one, as OpenAI does.
	Usage json.RawMessage `json:"usage,omitempty"`
}

func (h *handler) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "messages must not be empty")
		return
	}
	model := modelOr(req.Model)
	prompt := 0
	for _, m := range req.Messages {
		prompt += countWords(m.Content)
	}
	completionTokens := len(strings.Fields(reply))
	u := usage{PromptTokens: prompt, CompletionTokens: completionTokens, TotalTokens: prompt + completionTokens}
	id := "chatcmpl-demo-" + strconv.FormatUint(completionSerial.Add(1), 10)
	created := time.Now().Unix()

	if !req.Stream {
		writeJSON(w, http.StatusOK, completion{
			ID: id, Object: "chat.completion", Created: created, Model: model,
			Choices: []choice{{Index: 0, Message: message{Role: "assistant", Content: reply}, FinishReason: "stop"}},
			Usage:   u,
		})
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)

	send := func(c chunk) bool {
		b, err := json.Marshal(c)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		if h.streamDelay > 0 {
			select {
			case <-time.After(h.streamDelay):
			case <-r.Context().Done():
				return false
			}
		}
		return true
	}
	base := chunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model}
	if includeUsage {
		base.Usage = json.RawMessage("null")
	}

	first := base
	first.Choices = []chunkChoice{{Index: 0, Delta: delta{Role: "assistant"}}}
	if !send(first) {
		return
	}
	words := strings.Fields(reply)
	for i, word := range words {
		if i < len(words)-1 {
			word += " "
		}
		c := base
		c.Choices = []chunkChoice{{Index: 0, Delta: delta{Content: word}}}
		if !send(c) {
			return
		}
	}
	stop := "stop"
	last := base
	last.Choices = []chunkChoice{{Index: 0, Delta: delta{}, FinishReason: &stop}}
	if !send(last) {
		return
	}
	if includeUsage {
		final := base
		final.Choices = []chunkChoice{}
		final.Usage, _ = json.Marshal(u)
		if !send(final) {
			return
		}
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

// countWords counts the words of a message's content: either a string or a
// list of parts whose "text" fields count.
func countWords(raw json.RawMessage) int {
	if len(raw) == 0 {
		return 0
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return len(strings.Fields(s))
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err == nil {
		n := 0
		for _, p := range parts {
			n += len(strings.Fields(p.Text))
		}
		return n
	}
	return 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{
		"code": code, "type": "invalid_request_error", "message": msg,
	}})
}
