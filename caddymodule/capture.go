package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/metering"
)

// Bounds on what the capture holds in memory.
const (
	// maxJSONCapture: a non-streamed JSON body is kept whole up to this
	// size to read its usage; beyond it only the tail is kept, where
	// OpenAI puts "usage" (large embedding responses end with it).
	maxJSONCapture = 4 << 20
	jsonTail       = 64 << 10
	// maxSSEEvent: an SSE event longer than this is passed on unparsed.
	maxSSEEvent = 1 << 20
)

// capture passes the upstream response to the client as it comes, and
// reads what it needs for settlement on the way: the status, the usage
// (from a JSON body or an SSE stream's final chunk) and, for streams, the
// text delivered. It holds at most one SSE event (so it can drop the usage
// chunk the client did not ask for) and a bounded JSON body. With holdJSON
// a JSON response of at most maxJSONCapture bytes is held whole, headers
// included, until the handler sends it (sendHeld) once it is settled.
type capture struct {
	http.ResponseWriter
	// ctx is the request's: canceled when the client left.
	ctx context.Context

	// dropUsageChunk: remove the usage-only chunk ("choices": [] with
	// "usage") from the stream; the gateway added include_usage itself.
	dropUsageChunk bool
	costHeader     string
	// holdJSON: hold a JSON response small enough to keep whole until the
	// handler calls sendHeld, so that it carries the settled balance.
	holdJSON bool
	// atStreamEnd, when set, settles the request at the end of an SSE
	// stream (before [DONE], after the Responses API's final event) and
	// answers the balance, which goes to the client as a comment.
	atStreamEnd func() (metering.Credits, bool)

	status    int  // the upstream's status; 0 until it answers
	canceled  bool // reverse_proxy recorded its 499: the client left first
	sse       bool
	json      bool
	cost      string // the cost header's value, read at WriteHeader
	written   int64  // bytes passed to the client
	writeErr  error
	pending   []byte // the SSE event being received
	lineStart int    // where pending's current line starts
	passEvent bool   // the pending event is too long to parse: passed through as it comes
	passBlank bool   // while passing through: the current line is blank so far
	body      []byte // the JSON body (or its tail once past maxJSONCapture)
	overflow  bool
	holding   bool // a held response: nothing sent to the client yet
	ended     bool // atStreamEnd was called

	usage         usageInfo
	model         string // the model the upstream says it served
	streamedBytes int64  // text delivered in stream chunks
	done          bool   // [DONE] or a terminal event was seen
}

// usageInfo is what an upstream reported it used.
type usageInfo struct {
	found                     bool
	inputTokens, outputTokens int64
	audioMillis               int64 // from a duration usage or the response's duration
	images                    int64 // the response's data items
	hasImages                 bool
}

func (c *capture) WriteHeader(code int) {
	if c.status != 0 {
		return
	}
	if code < 200 { // informational (103 Early Hints): pass it on, wait for the real one
		c.ResponseWriter.WriteHeader(code)
		return
	}
	if code == statusClientClosed && c.ctx != nil && c.ctx.Err() != nil {
		// reverse_proxy's own 499 when the client canceled: for the access
		// log, not an answer of the upstream's.
		c.canceled = true
		c.ResponseWriter.WriteHeader(code)
		return
	}
	c.status = code
	h := c.ResponseWriter.Header()
	if c.costHeader != "" {
		c.cost = h.Get(c.costHeader)
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	switch {
	case mt == "text/event-stream":
		c.sse = true
		if c.dropUsageChunk || c.atStreamEnd != nil {
			// The body changes length: a chunk dropped, a comment added.
			h.Del("Content-Length")
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		c.json = true
		if c.holdJSON && fitsHold(h.Get("Content-Length")) {
			c.holding = true
			return
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

// fitsHold reports whether a body of that Content-Length can be held
// (unknown: held until it grows past maxJSONCapture).
func fitsHold(contentLength string) bool {
	if contentLength == "" {
		return true
	}
	n, err := strconv.ParseInt(contentLength, 10, 64)
	return err == nil && n >= 0 && n <= maxJSONCapture
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 && !c.canceled {
		c.WriteHeader(http.StatusOK)
	}
	switch {
	case c.sse:
		if err := c.writeSSE(p); err != nil {
			return 0, err
		}
		return len(p), nil
	case c.json:
		if c.holding {
			if len(c.body)+len(p) <= maxJSONCapture {
				c.body = append(c.body, p...)
				return len(p), nil
			}
			// Too large to hold after all: what was held goes now, with
			// the reservation's balance, and the rest as it comes.
			if err := c.sendHeld(0, false); err != nil {
				return 0, err
			}
		}
		c.keepJSON(p)
	}
	return c.pass(p)
}

// sendHeld sends a held response, with the settled balance when settled.
func (c *capture) sendHeld(remaining metering.Credits, settled bool) error {
	c.holding = false
	if settled {
		c.ResponseWriter.Header().Set(headerRemaining, remaining.String())
	}
	c.ResponseWriter.WriteHeader(c.status)
	if len(c.body) == 0 {
		return nil
	}
	_, err := c.pass(c.body)
	return err
}

// flushOut sends what the response left buffered; nothing before the
// response has begun (the handler may still answer an error itself).
func (c *capture) flushOut() {
	if c.status != 0 && !c.holding && c.writeErr == nil {
		_ = http.NewResponseController(c.ResponseWriter).Flush()
	}
}

func (c *capture) pass(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.written += int64(n)
	if err != nil && c.writeErr == nil {
		c.writeErr = err
	}
	return n, err
}

// Flush passes complete events on at once; a partial SSE event stays
// until its end arrives (a client cannot use half an event anyway). A
// held response stays held.
func (c *capture) Flush() {
	if c.status == 0 && !c.canceled {
		c.WriteHeader(http.StatusOK)
	}
	if c.holding {
		return
	}
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection underneath.
func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *capture) keepJSON(p []byte) {
	if !c.overflow && len(c.body)+len(p) <= maxJSONCapture {
		c.body = append(c.body, p...)
		return
	}
	if !c.overflow {
		// The head is about to go: the model is named near the start.
		c.servedModel(headModel(c.body))
	}
	c.overflow = true
	c.body = append(c.body, p...)
	if len(c.body) > jsonTail {
		c.body = append(c.body[:0], c.body[len(c.body)-jsonTail:]...)
	}
}

// writeSSE splits the stream into events (ended by a blank line) and
// passes each on once complete, unless it is the usage chunk to drop. An
// event longer than maxSSEEvent is passed on as it comes, unparsed, so the
// capture never holds more than that (plus the piece being written).
func (c *capture) writeSSE(p []byte) error {
	for len(p) > 0 {
		if c.passEvent {
			n := c.passThrough(p)
			if _, err := c.pass(p[:n]); err != nil {
				return err
			}
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.pending = append(c.pending, p...)
			return c.tooLong()
		}
		c.pending = append(c.pending, p[:i+1]...)
		p = p[i+1:]
		line := bytes.TrimRight(c.pending[c.lineStart:], "\r\n")
		c.lineStart = len(c.pending)
		if len(line) == 0 {
			if err := c.endEvent(); err != nil {
				return err
			}
			continue
		}
		if err := c.tooLong(); err != nil {
			return err
		}
	}
	return nil
}

// tooLong switches to passing the pending event through unparsed once it
// exceeds maxSSEEvent.
func (c *capture) tooLong() error {
	if len(c.pending) <= maxSSEEvent {
		return nil
	}
	c.passEvent = true
	c.passBlank = allCR(c.pending[c.lineStart:])
	ev := c.pending
	c.pending, c.lineStart = c.pending[:0], 0
	_, err := c.pass(ev)
	return err
}

// passThrough is how much of p belongs to the event being passed through:
// up to and including the blank line that ends it (all of p when it does
// not end in p), which ends pass-through.
func (c *capture) passThrough(p []byte) int {
	at := 0
	for {
		i := bytes.IndexByte(p[at:], '\n')
		if i < 0 {
			c.passBlank = c.passBlank && allCR(p[at:])
			return len(p)
		}
		blank := c.passBlank && allCR(p[at:at+i])
		at += i + 1
		c.passBlank = true // a new line starts
		if blank {
			c.passEvent = false
			return at
		}
	}
}

func allCR(b []byte) bool {
	for _, c := range b {
		if c != '\r' {
			return false
		}
	}
	return true
}

// endEvent parses the complete pending event and passes it on or drops it.
func (c *capture) endEvent() error {
	ev := c.pending
	c.pending, c.lineStart = c.pending[:0], 0
	var data []byte
	for _, line := range bytes.Split(ev, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(d, []byte(" "))...)
		}
	}
	// An event past maxSSEEvent is never parsed, however it arrived, so
	// what reaches the client does not depend on how the stream was cut.
	if len(ev) > maxSSEEvent || len(data) == 0 {
		_, err := c.pass(ev)
		return err
	}
	if bytes.Equal(data, doneData) {
		// The usage came before [DONE]: settle, and tell the client.
		c.done = true
		if err := c.sendSettledBalance(); err != nil {
			return err
		}
		_, err := c.pass(ev)
		return err
	}
	wasDone := c.done
	if c.readChunk(data) {
		return nil // dropped
	}
	if _, err := c.pass(ev); err != nil {
		return err
	}
	if !wasDone && c.done {
		// The Responses API's final event, which carries the usage.
		return c.sendSettledBalance()
	}
	return nil
}

var doneData = []byte("[DONE]")

// sendSettledBalance settles the stream (once) and sends the balance after
// it as an SSE comment, which SDKs skip: ": credits-remaining <n>". Nothing
// is sent when the settlement did not come in time.
func (c *capture) sendSettledBalance() error {
	if c.atStreamEnd == nil || c.ended || c.writeErr != nil {
		return nil
	}
	c.ended = true
	remaining, ok := c.atStreamEnd()
	if !ok {
		return nil
	}
	b := make([]byte, 0, 48)
	b = append(b, ": credits-remaining "...)
	b = remaining.AppendText(b)
	b = append(b, "\n\n"...)
	_, err := c.pass(b)
	return err
}

// sseChunk holds what settlement needs from one stream chunk, of chat and
// legacy completions, and of the Responses API's events.
type sseChunk struct {
	Choices *[]struct {
		Delta struct {
			Content   string          `json:"content"`
			Refusal   string          `json:"refusal"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"delta"`
		Text string `json:"text"`
	} `json:"choices"`
	Usage    *usageJSON      `json:"usage"`
	Model    string          `json:"model"`
	Type     string          `json:"type"`
	Delta    json.RawMessage `json:"delta"`
	Response *struct {
		Usage *usageJSON `json:"usage"`
		Model string     `json:"model"`
	} `json:"response"`
}

// readChunk records one data payload; it answers true when the chunk is
// the usage-only chunk to drop.
func (c *capture) readChunk(data []byte) bool {
	if bytes.Equal(data, doneData) {
		c.done = true
		return false
	}
	var ch sseChunk
	if json.Unmarshal(data, &ch) != nil {
		return false
	}
	if ch.Choices != nil {
		for _, choice := range *ch.Choices {
			c.streamedBytes += int64(len(choice.Delta.Content) + len(choice.Delta.Refusal) + len(choice.Text))
			if len(choice.Delta.ToolCalls) > 0 && string(choice.Delta.ToolCalls) != "null" {
				c.streamedBytes += int64(len(choice.Delta.ToolCalls))
			}
		}
	}
	if ch.Type != "" && strings.HasSuffix(ch.Type, ".delta") {
		var s string
		if json.Unmarshal(ch.Delta, &s) == nil {
			c.streamedBytes += int64(len(s))
		}
	}
	c.servedModel(ch.Model)
	if ch.Response != nil {
		c.servedModel(ch.Response.Model)
	}
	if ch.Response != nil && ch.Response.Usage != nil {
		c.usage.add(*ch.Response.Usage)
		c.done = true
	}
	if ch.Usage != nil {
		c.usage.add(*ch.Usage)
		return c.dropUsageChunk && ch.Choices != nil && len(*ch.Choices) == 0
	}
	return false
}

// usageJSON is every usage shape OpenAI returns: chat/completions and
// embeddings (prompt/completion tokens), Responses, images and token-billed
// transcriptions (input/output tokens), duration-billed transcriptions.
type usageJSON struct {
	PromptTokens     *int64      `json:"prompt_tokens"`
	CompletionTokens *int64      `json:"completion_tokens"`
	InputTokens      *int64      `json:"input_tokens"`
	OutputTokens     *int64      `json:"output_tokens"`
	Type             string      `json:"type"`
	Seconds          json.Number `json:"seconds"`
}

func (u *usageInfo) add(j usageJSON) {
	val := func(p *int64) int64 {
		if p == nil || *p < 0 || *p > maxTokensValue {
			return 0
		}
		return *p
	}
	in, out := val(j.PromptTokens)+val(j.InputTokens), val(j.CompletionTokens)+val(j.OutputTokens)
	ms, okMs := secondsToMillis(j.Seconds)
	if j.PromptTokens == nil && j.InputTokens == nil && j.CompletionTokens == nil && j.OutputTokens == nil && !okMs {
		return // "usage": {} tells nothing
	}
	u.found = true
	u.inputTokens, u.outputTokens = in, out
	if okMs {
		u.audioMillis = ms
	}
}

// finishJSON reads the usage of a non-streamed JSON body.
func (c *capture) finishJSON() {
	if !c.json || len(c.body) == 0 {
		return
	}
	if !c.overflow {
		var body struct {
			Usage    *usageJSON        `json:"usage"`
			Model    string            `json:"model"`
			Duration json.Number       `json:"duration"`
			Data     []json.RawMessage `json:"data"`
		}
		if json.Unmarshal(c.body, &body) != nil {
			return
		}
		c.servedModel(body.Model)
		if body.Usage != nil {
			c.usage.add(*body.Usage)
		}
		if ms, ok := secondsToMillis(body.Duration); ok && c.usage.audioMillis == 0 {
			c.usage.audioMillis, c.usage.found = ms, true
		}
		if body.Data != nil {
			c.usage.images, c.usage.hasImages = int64(len(body.Data)), true
		}
		return
	}
	// Only the tail is left: decode the last "usage" object in it, and
	// the last "model" (an embeddings list ends with both).
	var u usageJSON
	if tailValue(c.body, "usage", &u) {
		c.usage.add(u)
	}
	var m string
	if c.model == "" && tailValue(c.body, "model", &m) {
		c.servedModel(m)
	}
}

// tailValue decodes the value of the last member named key in a JSON
// fragment into v.
func tailValue(b []byte, key string, v any) bool {
	i := bytes.LastIndex(b, []byte(`"`+key+`"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(b[i+len(key)+2:], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	return ok && json.NewDecoder(bytes.NewReader(rest)).Decode(v) == nil
}

// servedModel records the first model the upstream names.
func (c *capture) servedModel(m string) {
	if c.model == "" && m != "" {
		c.model = m
	}
}

// finishSSE passes on an event left without its closing blank line.
func (c *capture) finishSSE() {
	if c.sse && len(c.pending) > 0 && c.writeErr == nil {
		c.pending = append(c.pending, '\n')
		_ = c.endEvent()
	}
}

// secondsToMillis converts a JSON number of seconds ("8", "8.47",
// "1e1") to whole milliseconds, rounded up, without going through a float.
func secondsToMillis(n json.Number) (int64, bool) {
	s := string(n)
	if s == "" || strings.ContainsAny(s, "eE-+") {
		return 0, false
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(whole) == 0 || len(whole) > 9 || !allDigits(whole) || !allDigits(frac) {
		return 0, false
	}
	var ms int64
	for _, d := range whole {
		ms = ms*10 + int64(d-'0')
	}
	ms *= 1000
	for i, d := range frac {
		switch {
		case i < 3:
			ms += int64(d-'0') * [3]int64{100, 10, 1}[i]
		case d != '0':
			return ms + 1, true // a fraction of a millisecond rounds up
		}
	}
	return ms, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// statusClientClosed is the status reverse_proxy records when the client
// cancels (nginx's 499).
const statusClientClosed = 499

// headModel reads the top-level "model" string of a JSON object's first
// bytes, stopping at the first key named so.
func headModel(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		if t == "model" {
			var m string
			if dec.Decode(&m) != nil {
				return ""
			}
			return m
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}

var (
	_ http.Flusher = (*capture)(nil)
)
