package caddymodule_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// balanceConfig is a priced route with the given settle_wait, on the
// Redis at redisURL.
func balanceConfig(settleWait, redisURL string) func(t *testing.T, b *meteringtest.Bundle, listen, upstreamAddr string) string {
	return func(t *testing.T, b *meteringtest.Bundle, listen, upstreamAddr string) string {
		return globalOptions(t, b, redisURL, "test") + fmt.Sprintf(`http://%s {
	handle /v1/* {
		metering {
			price_by model
			max_output_tokens 100
			lease 1m
			settle_wait %s
		}
		reverse_proxy %s
	}
}`, listen, settleWait, upstreamAddr)
	}
}

// bigJSON is the size of the "big" models' answers: more than a held
// response may be.
const bigJSON = 5 << 20

// balanceUpstream is fakeOpenAI plus what these tests need: a Responses
// API stream, embeddings too large to hold ("big" with a Content-Length,
// "bigchunked" without), and before any answer, onRequest (may be nil).
func balanceUpstream(t *testing.T, onRequest func(model string)) *fakeOpenAI {
	f := &fakeOpenAI{slowStarted: make(chan struct{}, 16)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = json.Unmarshal(body, &req)
		if onRequest != nil {
			onRequest(req.Model)
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/responses") && req.Stream:
			writeResponsesStream(w, req.Model)
		case strings.HasSuffix(r.URL.Path, "/embeddings") && strings.HasPrefix(req.Model, "big"):
			writeBigEmbeddings(w, req.Model)
		case req.Model == "gzip" && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip"):
			// As OpenAI's servers do when the client accepts it.
			rec := httptest.NewRecorder()
			r.Body = io.NopCloser(bytes.NewReader(body))
			f.serve(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(rec.Code)
			zw := gzip.NewWriter(w)
			zw.Write(rec.Body.Bytes())
			zw.Close()
		default:
			r.Body = io.NopCloser(bytes.NewReader(body))
			f.serve(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// writeResponsesStream answers a streamed Responses API request as OpenAI
// does: created, a text delta, completed with the usage.
func writeResponsesStream(w http.ResponseWriter, model string) {
	w.Header().Set("Content-Type", "text/event-stream")
	resp := func(status, usage string) string {
		return fmt.Sprintf(`{"id":"resp_1","object":"response","created_at":1,"model":%q,"status":%q,"output":[],"usage":%s}`,
			model, status, usage)
	}
	for i, ev := range []struct{ typ, data string }{
		{"response.created", `"response":` + resp("in_progress", "null")},
		{"response.output_text.delta", `"item_id":"msg_1","output_index":0,"content_index":0,"delta":"hello"`},
		{"response.completed", `"response":` + resp("completed",
			fmt.Sprintf(`{"input_tokens":%d,"output_tokens":%d,"total_tokens":%d}`, fakePrompt, fakeCompletion, fakePrompt+fakeCompletion))},
	} {
		fmt.Fprintf(w, "event: %s\ndata: {\"type\":%q,\"sequence_number\":%d,%s}\n\n", ev.typ, ev.typ, i, ev.data)
		w.(http.Flusher).Flush()
	}
}

// writeBigEmbeddings answers an embeddings request with bigJSON bytes,
// the usage at the end as OpenAI puts it; "bigchunked" sends no
// Content-Length and flushes as it goes.
func writeBigEmbeddings(w http.ResponseWriter, model string) {
	head, numbers, tail := bigEmbeddings(model)
	w.Header().Set("Content-Type", "application/json")
	if model == "big" {
		w.Header().Set("Content-Length", strconv.Itoa(len(head)+len(numbers)+len(tail)))
	}
	io.WriteString(w, head)
	for len(numbers) > 0 {
		n := min(64<<10, len(numbers))
		io.WriteString(w, numbers[:n])
		numbers = numbers[n:]
		if model != "big" {
			w.(http.Flusher).Flush()
		}
	}
	io.WriteString(w, tail)
}

// bigEmbeddings is the answer of writeBigEmbeddings, in three parts.
func bigEmbeddings(model string) (head, numbers, tail string) {
	head = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5`
	tail = fmt.Sprintf(`]}],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`, model, fakePrompt, fakePrompt)
	return head, strings.Repeat(",0.5", (bigJSON-len(head)-len(tail))/4), tail
}

// teeTransport keeps a copy of the last response body its client read.
type teeTransport struct {
	mu   sync.Mutex
	last *bytes.Buffer
}

func (t *teeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	buf := &bytes.Buffer{}
	t.mu.Lock()
	t.last = buf
	t.mu.Unlock()
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(resp.Body, buf), resp.Body}
	return resp, nil
}

func (t *teeTransport) body() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last.String()
}

// Item 4: X-Credits-Remaining on a priced route is the balance after the
// settlement for a JSON answer (held until settled), and after the
// reservation for a stream, which ends with the settled balance in an SSE
// comment that the openai-go SDK skips; an answer too large to hold passes
// through as it comes, with the reservation's balance.
func TestRemainingIsTheSettledBalance(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	putTestPrices(t, b, "m", "fail", "big", "bigchunked", "gzip")
	up := balanceUpstream(t, nil)
	listen := freePort(t)
	// settle_wait far above any settlement here: the figures are exact.
	startGateway(t, balanceConfig("1m", meteringtest.RedisURL())(t, b, listen, up.Listener.Addr().String()))
	w := &meteredWorld{b: b, up: up, base: "http://" + listen, http: &http.Client{}}
	ctx := context.Background()
	balance := 10 * metering.Micro
	tee := &teeTransport{}
	c := openai.NewClient(option.WithBaseURL(w.base+"/v1/"), option.WithAPIKey(w.user(t, "ann", balance)),
		option.WithMaxRetries(0), option.WithHTTPClient(&http.Client{Transport: tee}))

	t.Run("JSON: the balance after the settlement", func(t *testing.T) {
		var hr *http.Response
		resp, err := c.Chat.Completions.New(ctx, chatParams("m", 50), option.WithResponseInto(&hr))
		require.NoError(t, err)
		require.Equal(t, "hello there", resp.Choices[0].Message.Content)
		balance -= costOf(fakePrompt, fakeCompletion)
		require.Equal(t, balance.String(), hr.Header.Get("X-Credits-Remaining"))
		// Settled before the answer was sent: nothing is in flight now.
		v, err := b.Engine.GetUser(ctx, "ann")
		require.NoError(t, err)
		require.Zero(t, v.InFlight)
		require.Equal(t, balance, v.Live.Effective)
	})

	t.Run("JSON, the client accepting gzip: the usage is read all the same", func(t *testing.T) {
		// Go's HTTP client, like Python's and Node's, asks for gzip; an
		// upstream that compresses must not hide the usage from the gateway.
		var hr *http.Response
		resp, err := c.Chat.Completions.New(ctx, chatParams("gzip", 50), option.WithResponseInto(&hr))
		require.NoError(t, err)
		require.Equal(t, "hello there", resp.Choices[0].Message.Content)
		balance -= costOf(fakePrompt, fakeCompletion)
		require.Equal(t, balance.String(), hr.Header.Get("X-Credits-Remaining"))
	})

	t.Run("JSON error: the refund shows", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, chatParams("fail", 50))
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 500, apiErr.StatusCode)
		require.Equal(t, balance.String(), apiErr.Response.Header.Get("X-Credits-Remaining"))
	})

	t.Run("chat stream: the reservation's balance first, the settled one before [DONE]", func(t *testing.T) {
		var hr *http.Response
		s := c.Chat.Completions.NewStreaming(ctx, chatParams("m", 50), option.WithResponseInto(&hr))
		var text strings.Builder
		for s.Next() {
			for _, choice := range s.Current().Choices {
				text.WriteString(choice.Delta.Content)
			}
		}
		require.NoError(t, s.Err(), "the SDK reads the stream, comment and all")
		require.Equal(t, "abcdabcdabcd", text.String())
		reserved := costOf(chatInput(t, "m", 50, true), 50)
		require.Equal(t, (balance - reserved).String(), hr.Header.Get("X-Credits-Remaining"))
		balance -= costOf(fakePrompt, fakeCompletion)
		raw := tee.body()
		require.True(t, strings.HasSuffix(raw, "\n\n: credits-remaining "+balance.String()+"\n\ndata: [DONE]\n\n"), raw)
		require.Equal(t, balance, w.settled(t, "ann"))
	})

	t.Run("Responses stream: the settled balance after response.completed", func(t *testing.T) {
		s := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "m",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
		var types []string
		for s.Next() {
			types = append(types, s.Current().Type)
		}
		require.NoError(t, s.Err())
		require.Equal(t, []string{"response.created", "response.output_text.delta", "response.completed"}, types)
		balance -= costOf(fakePrompt, fakeCompletion)
		raw := tee.body()
		i := strings.Index(raw, "event: response.completed\n")
		require.Positive(t, i, raw)
		after := raw[i+strings.Index(raw[i:], "\n\n")+2:]
		require.Equal(t, ": credits-remaining "+balance.String()+"\n\n", after)
		require.Equal(t, balance, w.settled(t, "ann"))
	})

	for _, model := range []string{"big", "bigchunked"} {
		t.Run("JSON too large to hold: as it comes, the reservation's balance ("+model+")", func(t *testing.T) {
			var hr *http.Response
			resp, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: openai.EmbeddingModel(model),
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hi")}}, option.WithResponseInto(&hr))
			require.NoError(t, err)
			require.Equal(t, int64(fakePrompt), resp.Usage.PromptTokens)
			head, numbers, tail := bigEmbeddings(model)
			require.Equal(t, head+numbers+tail, tee.body(), "the whole answer")
			events := w.usageEvents(t, "ann")
			reserved := metering.Credits(events[len(events)-1].reserved)
			require.Equal(t, (balance - reserved).String(), hr.Header.Get("X-Credits-Remaining"))
			balance -= costOf(fakePrompt, 0)
			require.Equal(t, balance, w.settled(t, "ann"))
		})
	}

	b.Drain(t)
	b.AssertConsistent(t)
}

// stallProxy is a TCP proxy in front of Redis that can stall every
// command on every connection, old or new, until released: a slow Redis,
// which loses nothing and answers late.
type stallProxy struct {
	addr    string
	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &stallProxy{addr: ln.Addr().String()}
	p.cond = sync.NewCond(&p.mu)
	var wg sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			connsMu.Lock()
			conns = append(conns, client, server)
			connsMu.Unlock()
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer server.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := client.Read(buf)
					if n > 0 {
						p.wait()
						if _, werr := server.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				defer client.Close()
				_, _ = io.Copy(client, server)
			}()
		}
	}()
	t.Cleanup(func() {
		p.release()
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	return p
}

// wait blocks while the proxy is stalled.
func (p *stallProxy) wait() {
	p.mu.Lock()
	for p.stalled {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

func (p *stallProxy) release() {
	p.mu.Lock()
	p.stalled = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Item 4: Redis slows down after the reservation (the upstream stalls it
// when the request reaches it). The held JSON answer still reaches the
// client once settle_wait has passed, with the reservation's balance; a
// stream still gets its [DONE], without the comment, and its end; so does
// an answer passed through; all are settled once Redis answers again.
func TestRemainingWhenRedisIsSlow(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	putTestPrices(t, b, "stall", "bigchunked-stall")
	u, err := url.Parse(meteringtest.RedisURL())
	require.NoError(t, err)
	proxy := newStallProxy(t, u.Host)
	up := balanceUpstream(t, func(model string) {
		if strings.HasSuffix(model, "stall") {
			proxy.stall()
		}
	})
	// The gateway's Redis client waits for a stalled command as long as
	// it takes (no read timeout of its own cuts it short), so only
	// settle_wait lets an answer out while Redis is stalled; a gateway
	// that waited for Redis would answer only when the test releases it,
	// after the answer: the client's timeout would end the test.
	viaProxy := *u
	viaProxy.Host = proxy.addr
	q := viaProxy.Query()
	q.Set("read_timeout", "10m")
	viaProxy.RawQuery = q.Encode()
	listen := freePort(t)
	startGateway(t, balanceConfig("200ms", viaProxy.String())(t, b, listen, up.Listener.Addr().String()))
	t.Cleanup(proxy.release) // before the gateway stops, should a check fail while stalled
	w := &meteredWorld{b: b, up: up, base: "http://" + listen, http: &http.Client{Timeout: time.Minute}}
	ctx := context.Background()
	balance := 10 * metering.Micro
	key := w.user(t, "ann", balance)
	c := w.client(key)

	t.Run("JSON", func(t *testing.T) {
		var hr *http.Response
		resp, err := c.Chat.Completions.New(ctx, chatParams("stall", 50), option.WithResponseInto(&hr))
		require.NoError(t, err, "the answer came although Redis did not")
		require.Equal(t, "hello there", resp.Choices[0].Message.Content)
		reserved := costOf(chatInput(t, "stall", 50, false), 50)
		require.Equal(t, (balance - reserved).String(), hr.Header.Get("X-Credits-Remaining"))
		proxy.release()
		balance -= costOf(fakePrompt, fakeCompletion)
		require.Equal(t, balance, w.settled(t, "ann"), "settled once Redis answered")
	})

	t.Run("stream", func(t *testing.T) {
		body := `{"model":"stall","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
		req, err := http.NewRequest("POST", w.base+"/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := w.http.Do(req)
		require.NoError(t, err)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.True(t, strings.HasSuffix(string(raw), "data: [DONE]\n\n"), "the stream ended: %s", raw)
		require.NotContains(t, string(raw), "credits-remaining", "no settled balance to tell")
		proxy.release()
		balance -= costOf(fakePrompt, fakeCompletion)
		require.Equal(t, balance, w.settled(t, "ann"))
	})

	t.Run("an answer passed through: its end is not held up either", func(t *testing.T) {
		// Chunked, too large to hold: it ends with its last chunk, which
		// goes when the handler returns, after settling or settle_wait.
		resp, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "bigchunked-stall",
			Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hi")}})
		require.NoError(t, err)
		require.Equal(t, int64(fakePrompt), resp.Usage.PromptTokens)
		proxy.release()
		balance -= costOf(fakePrompt, 0)
		require.Equal(t, balance, w.settled(t, "ann"))
	})

	b.Drain(t)
	b.AssertConsistent(t)
}
