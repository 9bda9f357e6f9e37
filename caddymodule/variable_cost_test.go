package caddymodule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// fakeOpenAI is an OpenAI-compatible upstream. Its behaviour follows the
// model name: "fail" answers 500, "verbose" reports a large completion,
// "slow" streams three chunks and then waits for the client to leave,
// "slowstart" waits for the client to leave before answering anything,
// "alias" answers as the model "dear". Every answer reports prompt_tokens
// 11 and completion_tokens 7 otherwise. It records what reached it.
type fakeOpenAI struct {
	*httptest.Server
	includeUsageSeen atomic.Int64 // streamed requests that reached it with include_usage
	streams          atomic.Int64
	slowStarted      chan struct{}
	mu               sync.Mutex
	received         []received
}

// received is one request as the upstream saw it.
type received struct {
	path   string
	header http.Header
	body   []byte
}

// last is the last request that reached the upstream.
func (f *fakeOpenAI) last(t *testing.T) received {
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.received, "nothing reached the upstream")
	return f.received[len(f.received)-1]
}

func (f *fakeOpenAI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.received)
}

const (
	fakePrompt     = 11
	fakeCompletion = 7
)

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	f := &fakeOpenAI{slowStarted: make(chan struct{}, 16)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeOpenAI) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.received = append(f.received, received{path: r.URL.Path, header: r.Header.Clone(), body: body})
	f.mu.Unlock()
	if len(body) == 0 {
		w.Write([]byte(`{"ok":true}`))
		return
	}
	if strings.HasSuffix(r.URL.Path, "/audio/transcriptions") {
		// response_format=text: the transcript alone, no usage.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("hello there\n"))
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, 400)
		return
	}
	completion := fakeCompletion
	served := req.Model
	switch req.Model {
	case "slowstart":
		f.slowStarted <- struct{}{}
		<-r.Context().Done()
		return
	case "alias":
		served = "dear"
	case "fail":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		w.Write([]byte(`{"error":{"message":"upstream broke","type":"server_error"}}`))
		return
	case "verbose":
		completion = 500
	}
	usage := fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, fakePrompt, completion, fakePrompt+completion)
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],"usage":%s}`, served, usage)
		return
	}
	f.streams.Add(1)
	if req.StreamOptions.IncludeUsage {
		f.includeUsageSeen.Add(1)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fl := w.(http.Flusher)
	chunk := func(content string) {
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", served, content)
		fl.Flush()
	}
	for range 3 {
		chunk("abcd")
	}
	if req.Model == "slow" {
		f.slowStarted <- struct{}{}
		<-r.Context().Done()
		return
	}
	if req.StreamOptions.IncludeUsage {
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[],\"usage\":%s}\n\n", served, usage)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func meteredConfig(t *testing.T, b *meteringtest.Bundle, listen, upstreamAddr string) string {
	return globalOptions(t, b, meteringtest.RedisURL(), "test") + fmt.Sprintf(`http://%s {
	handle /v1/* {
		metering {
			price_by model
			max_output_tokens 100
			lease 1m
		}
		reverse_proxy %s
	}
	handle {
		metering 1
		reverse_proxy %s
	}
}`, listen, upstreamAddr, upstreamAddr)
}

// Price of model "m" and friends: 1000 micro-credits per input token,
// 2000 per output token.
var testPrice = metering.Price{InputPerMillion: 1000 * metering.Micro, OutputPerMillion: 2000 * metering.Micro}

func costOf(in, out int64) metering.Credits {
	return metering.Credits(in*1000 + out*2000)
}

// putTestPrices gives each model testPrice.
func putTestPrices(t *testing.T, b *meteringtest.Bundle, models ...string) {
	for _, m := range models {
		p := testPrice
		p.Model = m
		_, err := b.Engine.PutPrice(context.Background(), "test", p)
		require.NoError(t, err)
	}
}

type meteredWorld struct {
	b    *meteringtest.Bundle
	up   *fakeOpenAI
	base string
	http *http.Client
}

func setupMetered(t *testing.T) *meteredWorld {
	return startWorld(t, meteredConfig, "m", "fail", "verbose", "slow")
}

// startWorld starts a gateway with config in front of a fake OpenAI
// upstream, with testPrice for each of models.
func startWorld(t *testing.T, config func(t *testing.T, b *meteringtest.Bundle, listen, upstreamAddr string) string, models ...string) *meteredWorld {
	b := meteringtest.New(t, meteringtest.Options{})
	putTestPrices(t, b, models...)
	up := newFakeOpenAI(t)
	listen := freePort(t)
	startGateway(t, config(t, b, listen, up.Listener.Addr().String()))
	return &meteredWorld{b: b, up: up, base: "http://" + listen,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

func (w *meteredWorld) user(t *testing.T, name string, credits metering.Credits) string {
	_, key, err := w.b.Engine.CreateUser(context.Background(), "test", metering.UserSpec{Username: name, InitialCredits: credits})
	require.NoError(t, err)
	return key
}

// settled is the user's effective credits once none of its requests is in
// flight: the handler settles after the client has the whole response, so
// a balance read straight after a response may precede its settlement.
func (w *meteredWorld) settled(t *testing.T, name string) metering.Credits {
	t.Helper()
	require.Eventually(t, func() bool {
		v, err := w.b.Engine.GetUser(context.Background(), name)
		require.NoError(t, err)
		return v.InFlight == 0
	}, 10*time.Second, 2*time.Millisecond, "%s's requests are settled", name)
	return w.effective(t, name)
}

func (w *meteredWorld) effective(t *testing.T, name string) metering.Credits {
	v, err := w.b.Engine.GetUser(context.Background(), name)
	require.NoError(t, err)
	return v.Live.Effective
}

func (w *meteredWorld) client(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(w.base+"/v1/"), option.WithAPIKey(key),
		option.WithMaxRetries(0), option.WithHTTPClient(w.http))
}

func chatParams(model string, maxTokens int64) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}
	if maxTokens > 0 {
		p.MaxTokens = openai.Int(maxTokens)
	}
	return p
}

// chatInput is the gateway's input bound for chatParams(model, maxTokens):
// the bytes the SDK sends (its JSON, plus "stream":true for a stream) and
// the template's tokens, 3 per request and 4 per message.
func chatInput(t *testing.T, model string, maxTokens int64, stream bool) int64 {
	b, err := json.Marshal(chatParams(model, maxTokens))
	require.NoError(t, err)
	n := int64(len(b)) + 3 + 4
	if stream {
		n += int64(len(`,"stream":true`))
	}
	return n
}

func TestMeteredWithOpenAISDK(t *testing.T) {
	w := setupMetered(t)
	ctx := context.Background()
	start := 10 * metering.Micro
	key := w.user(t, "ann", start)
	c := w.client(key)
	spent := metering.Credits(0)

	t.Run("JSON: settled exactly from usage", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(ctx, chatParams("m", 50))
		require.NoError(t, err)
		require.Equal(t, int64(fakeCompletion), resp.Usage.CompletionTokens)
		spent += costOf(fakePrompt, fakeCompletion)
		require.Equal(t, start-spent, w.settled(t, "ann"))
	})

	t.Run("stream without include_usage: usage chunk dropped, settled from it", func(t *testing.T) {
		before := w.up.includeUsageSeen.Load()
		s := c.Chat.Completions.NewStreaming(ctx, chatParams("m", 50))
		var text strings.Builder
		usageChunks := 0
		for s.Next() {
			ch := s.Current()
			if len(ch.Choices) == 0 {
				usageChunks++
			}
			for _, choice := range ch.Choices {
				text.WriteString(choice.Delta.Content)
			}
		}
		require.NoError(t, s.Err())
		require.Equal(t, "abcdabcdabcd", text.String())
		require.Zero(t, usageChunks, "the client did not ask for usage")
		require.Equal(t, before+1, w.up.includeUsageSeen.Load(), "the gateway asked upstream for usage")
		spent += costOf(fakePrompt, fakeCompletion)
		require.Equal(t, start-spent, w.settled(t, "ann"))
	})

	t.Run("stream with include_usage: the client gets the usage chunk", func(t *testing.T) {
		p := chatParams("m", 50)
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		s := c.Chat.Completions.NewStreaming(ctx, p)
		var usage *openai.CompletionUsage
		for s.Next() {
			ch := s.Current()
			if len(ch.Choices) == 0 && ch.Usage.TotalTokens > 0 {
				u := ch.Usage
				usage = &u
			}
		}
		require.NoError(t, s.Err())
		require.NotNil(t, usage)
		require.Equal(t, int64(fakePrompt), usage.PromptTokens)
		spent += costOf(fakePrompt, fakeCompletion)
		require.Equal(t, start-spent, w.settled(t, "ann"))
	})

	t.Run("upstream 500 is refunded", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, chatParams("fail", 50))
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 500, apiErr.StatusCode)
		require.Equal(t, start-spent, w.settled(t, "ann"))
	})

	t.Run("unknown model: 400 unknown_model, nothing charged", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, chatParams("no-such-model", 50))
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 400, apiErr.StatusCode)
		require.Equal(t, "unknown_model", apiErr.Code)
		require.Equal(t, start-spent, w.settled(t, "ann"))
	})

	t.Run("overrun beyond the reservation is charged", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(ctx, chatParams("verbose", 10))
		require.NoError(t, err)
		require.Equal(t, int64(500), resp.Usage.CompletionTokens)
		spent += costOf(fakePrompt, 500)
		require.Equal(t, start-spent, w.settled(t, "ann"))
	})

	t.Run("client disconnect mid-stream: the delivered text is charged", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctx)
		s := c.Chat.Completions.NewStreaming(sctx, chatParams("slow", 50))
		for got := 0; got < 3 && s.Next(); got++ {
		}
		<-w.up.slowStarted
		cancel()
		s.Close()
		// 3 chunks of "abcd": 3 output tokens; no usage arrived.
		spent += costOf(chatInput(t, "slow", 50, true), 3)
		require.Eventually(t, func() bool { return w.effective(t, "ann") == start-spent }, 10*time.Second, 5*time.Millisecond,
			"want %s, have %s", start-spent, w.effective(t, "ann"))
	})

	t.Run("a shortfall never takes the balance below zero", func(t *testing.T) {
		poor := w.client(w.user(t, "poor", costOf(chatInput(t, "verbose", 10, false), 10)))
		_, err := poor.Chat.Completions.New(ctx, chatParams("verbose", 10))
		require.NoError(t, err)
		require.Equal(t, metering.Credits(0), w.settled(t, "poor"))
	})

	t.Run("402 when the estimate is not covered", func(t *testing.T) {
		broke := w.client(w.user(t, "broke", 1))
		_, err := broke.Chat.Completions.New(ctx, chatParams("m", 50))
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 402, apiErr.StatusCode)
		require.Equal(t, "insufficient_credits", apiErr.Code)
	})

	t.Run("everything else keeps its fixed cost", func(t *testing.T) {
		resp, body := gateway{base: w.base, client: w.http}.do(t, "GET", "/other", key)
		require.Equal(t, 200, resp.StatusCode, body)
		spent += metering.Micro
		require.Equal(t, start-spent, w.settled(t, "ann"))
	})

	w.b.Drain(t)
	w.b.AssertConsistent(t)
}

// 200 concurrent streams against a balance that covers only some: the
// balance never goes below zero and what was charged is what the ledger holds.
func TestMeteredConcurrentStreams(t *testing.T) {
	w := setupMetered(t)
	ctx := context.Background()
	reserve := costOf(chatInput(t, "m", 10, true), 10)
	start := 50 * reserve
	key := w.user(t, "crowd", start)
	c := w.client(key)
	var ok, refused atomic.Int64
	var other sync.Map
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := c.Chat.Completions.NewStreaming(ctx, chatParams("m", 10))
			for s.Next() {
			}
			var apiErr *openai.Error
			switch err := s.Err(); {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &apiErr) && apiErr.StatusCode == 402:
				refused.Add(1)
			default:
				other.Store(err.Error(), true)
			}
		}()
	}
	wg.Wait()
	other.Range(func(k, _ any) bool { t.Errorf("unexpected error: %v", k); return true })
	require.Equal(t, int64(200), ok.Load()+refused.Load())
	require.GreaterOrEqual(t, ok.Load(), int64(50))
	left := w.settled(t, "crowd")
	require.GreaterOrEqual(t, left, metering.Credits(0))
	require.Equal(t, start-metering.Credits(ok.Load())*costOf(fakePrompt, fakeCompletion), left)
	w.b.Drain(t)
	w.b.AssertConsistent(t)
}

// A stream that outlives its lease keeps its reservation: the handler
// renews the lease while the response runs, so a sweeper finds nothing to
// settle; when the client leaves, the handler settles it itself.
func TestMeteredLeaseRenewedDuringLongStream(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	putTestPrices(t, b, "slow")
	up := newFakeOpenAI(t)
	listen := freePort(t)
	cfg := strings.Replace(meteredConfig(t, b, listen, up.Listener.Addr().String()), "lease 1m", "lease 900ms", 1)
	startGateway(t, cfg)
	w := &meteredWorld{b: b, up: up, base: "http://" + listen, http: &http.Client{}}
	start := 10 * metering.Micro
	c := w.client(w.user(t, "ann", start))

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := c.Chat.Completions.NewStreaming(sctx, chatParams("slow", 50))
	<-up.slowStarted
	sw, err := b.Engine.NewSweeper(metering.SweeperConfig{Interval: time.Hour})
	require.NoError(t, err)
	// Several lease lengths pass; a sweep after each finds the lease renewed.
	for range 3 {
		time.Sleep(900 * time.Millisecond)
		n, err := sw.RunOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "a live stream's reservation was swept")
	}
	cancel()
	s.Close()
	want := start - costOf(chatInput(t, "slow", 50, true), 3)
	require.Eventually(t, func() bool { return w.effective(t, "ann") == want }, 10*time.Second, 5*time.Millisecond)
	b.Drain(t)
	b.AssertConsistent(t)
}
