//go:build faults

package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The fake upstream answers any path by its suffix, like the gateway
// recognises endpoints: /f/<n>/<mode>/... (or /l/..., leased) is a fixed-cost call,
// /c/<n>/<mode>/v1/chat/completions a chat completion (streamed when the
// body says so). <n> names the request, so the upstream can say what it
// reported for it; <mode> is how it misbehaves:
//
//	ok     answer at once
//	slow   answer late (a stream: every chunk late)
//	hang   never answer (a stream: after two chunks), until the client or
//	       the gateway gives up or the cycle ends
//	reset  reset the connection (a stream: after two chunks)
//	fail   answer 500
type upstream struct {
	ln  net.Listener
	srv *http.Server

	mu     sync.Mutex
	seen   map[int64]*upSeen
	active map[string]int // gateway + "/" + kind → requests being answered
	hangs  chan struct{}  // closed to end every hanging answer
}

// upSeen is what the upstream did with request n.
type upSeen struct {
	gateway string
	// usage it reported (in the body, or the stream's usage chunk), and
	// whether that answer was written out whole.
	prompt, completion int64
	complete           bool
}

const (
	upFixed = "fixed"
	upChat  = "chat"
)

func newUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{ln: ln, seen: map[int64]*upSeen{}, active: map[string]int{}, hangs: make(chan struct{})}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)} // resets and aborts are the point
	go u.srv.Serve(ln)
	return u, nil
}

func (u *upstream) addr() string { return u.ln.Addr().String() }

func (u *upstream) close() {
	u.endHangs()
	u.srv.Close()
}

// endHangs releases every hanging answer (they reset their connection) and
// arms a new set for the next cycle.
func (u *upstream) endHangs() {
	u.mu.Lock()
	close(u.hangs)
	u.hangs = make(chan struct{})
	u.mu.Unlock()
}

// activeOn counts requests of a kind being answered for a gateway now.
func (u *upstream) activeOn(gateway, kind string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.active[gateway+"/"+kind]
}

// busy counts every request being answered now.
func (u *upstream) busy() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, v := range u.active {
		n += v
	}
	return n
}

// report returns what the upstream did with request n (nil: never saw it).
func (u *upstream) report(n int64) *upSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.seen[n]; ok {
		c := *s
		return &c
	}
	return nil
}

// parseRequestPath reads /<f|l|c>/<n>/<mode>/... (l: fixed cost, from
// credit leases; the upstream answers it as f).
func parseRequestPath(path string) (kind string, n int64, mode string, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 4)
	if len(parts) < 3 {
		return "", 0, "", false
	}
	switch parts[0] {
	case "f", "l":
		kind = upFixed
	case "c":
		kind = upChat
	default:
		return "", 0, "", false
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", 0, "", false
	}
	return kind, n, parts[2], true
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, n, mode, ok := parseRequestPath(r.URL.Path)
	if !ok {
		http.Error(w, `{"error":{"message":"unknown path"}}`, http.StatusNotFound)
		return
	}
	gw := r.Header.Get("X-Gateway")
	u.mu.Lock()
	u.seen[n] = &upSeen{gateway: gw}
	u.active[gw+"/"+kind]++
	hangs := u.hangs
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.active[gw+"/"+kind]--
		u.mu.Unlock()
	}()
	a := answer{u: u, w: w, r: r, n: n, mode: mode, hangs: hangs}
	if kind == upFixed {
		a.fixed()
	} else {
		a.chat()
	}
}

// answer is one request being answered.
type answer struct {
	u     *upstream
	w     http.ResponseWriter
	r     *http.Request
	n     int64
	mode  string
	hangs chan struct{}
}

// slowDelay is how late a slow answer (or chunk) comes: 100-800 ms by n.
func (a answer) slowDelay() time.Duration { return time.Duration(100+a.n%8*100) * time.Millisecond }

// hang waits until the client or gateway leaves or the cycle ends, then
// resets the connection.
func (a answer) hang() {
	select {
	case <-a.r.Context().Done():
	case <-a.hangs:
	}
	a.reset()
}

// reset closes the connection with a TCP RST: before the status line
// unless a stream's chunks were already sent (and flushed).
func (a answer) reset() {
	hj, ok := a.w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

func (a answer) fail() {
	a.w.Header().Set("Content-Type", "application/json")
	a.w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(a.w, `{"error":{"message":"the fake upstream fails on purpose","type":"server_error"}}`)
}

// breakOff carries out a hang, reset or fail mode and reports whether it
// did (the answer is then over).
func (a answer) breakOff() bool {
	switch a.mode {
	case "hang":
		a.hang()
	case "reset":
		a.reset()
	case "fail":
		a.fail()
	default:
		return false
	}
	return true
}

func (a answer) fixed() {
	if a.breakOff() {
		return
	}
	if a.mode == "slow" {
		time.Sleep(a.slowDelay())
	}
	a.w.Header().Set("Content-Type", "application/json")
	if _, err := fmt.Fprintf(a.w, `{"ok":true,"n":%d}`, a.n); err == nil {
		a.u.done(a.n, 0, 0)
	}
}

// done records that request n's answer was written out whole.
func (u *upstream) done(n, prompt, completion int64) {
	u.mu.Lock()
	if s := u.seen[n]; s != nil {
		s.prompt, s.completion, s.complete = prompt, completion, true
	}
	u.mu.Unlock()
}

type chatBody struct {
	Model    string `json:"model"`
	Messages []struct {
		Content string `json:"content"`
	} `json:"messages"`
	MaxTokens     int64 `json:"max_tokens"`
	Stream        bool  `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (a answer) chat() {
	var req chatBody
	body, err := io.ReadAll(io.LimitReader(a.r.Body, 1<<20))
	if err != nil {
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(a.w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	// Usage never exceeds the gateway's estimate (text bytes/4 rounded up,
	// plus overheads; max_tokens), so no request overruns its reservation.
	var text int64
	for _, m := range req.Messages {
		text += int64(len(m.Content))
	}
	prompt := (text + 3) / 4
	words := min(max(req.MaxTokens, 1), 4+a.n%9)
	// A stream breaks off after two chunks (see stream), other answers
	// before anything is sent.
	if (!req.Stream || a.mode == "fail") && a.breakOff() {
		return
	}
	if a.mode == "slow" && !req.Stream {
		time.Sleep(a.slowDelay())
	}
	usage := fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, prompt, words, prompt+words)
	if !req.Stream {
		a.w.Header().Set("Content-Type", "application/json")
		content := strings.TrimSpace(strings.Repeat("word ", int(words)))
		if _, err := fmt.Fprintf(a.w, `{"id":"c%d","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":%s}`,
			a.n, req.Model, content, usage); err == nil {
			a.u.done(a.n, prompt, words)
		}
		return
	}
	a.stream(req, words, usage, prompt)
}

func (a answer) stream(req chatBody, words int64, usage string, prompt int64) {
	h := a.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	a.w.WriteHeader(http.StatusOK)
	flusher, _ := a.w.(http.Flusher)
	send := func(data string) bool {
		if _, err := fmt.Fprintf(a.w, "data: %s\n\n", data); err != nil {
			return false
		}
		flusher.Flush()
		return a.r.Context().Err() == nil
	}
	usageField := ""
	if req.StreamOptions.IncludeUsage {
		usageField = `,"usage":null`
	}
	for i := int64(0); i < words; i++ {
		if i == 2 && a.breakOff() {
			return
		}
		if a.mode == "slow" {
			select {
			case <-time.After(a.slowDelay() / 2):
			case <-a.r.Context().Done():
				return
			}
		}
		if !send(fmt.Sprintf(`{"id":"c%d","object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]%s}`,
			a.n, req.Model, usageField)) {
			return
		}
	}
	if !send(fmt.Sprintf(`{"id":"c%d","object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]%s}`,
		a.n, req.Model, usageField)) {
		return
	}
	if req.StreamOptions.IncludeUsage {
		if !send(fmt.Sprintf(`{"id":"c%d","object":"chat.completion.chunk","created":1,"model":%q,"choices":[],"usage":%s}`, a.n, req.Model, usage)) {
			return
		}
	}
	if send("[DONE]") {
		a.u.done(a.n, prompt, words)
	}
}
