package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	_ "github.com/tollgate/tollgate/caddymodule"
	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// demoPrice is the demo model's price as scripts/run.sh sets it.
var demoPrice = metering.Price{Model: "demo", InputPerMillion: metering.Micro, OutputPerMillion: 2 * metering.Micro,
	PerCharacter: 10, PerSecond: 100, PerImage: 20_000}

// startQuickStart runs the repository's Caddyfile as `make run` does, in
// front of this demo upstream, and returns the gateway's base URL.
func startQuickStart(t *testing.T, b *meteringtest.Bundle) string {
	up := httptest.NewServer(&handler{})
	t.Cleanup(up.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	db, err := url.Parse(meteringtest.DatabaseURL())
	require.NoError(t, err)
	q := db.Query()
	q.Set("search_path", b.Schema)
	db.RawQuery = q.Encode()
	for k, v := range map[string]string{"TOLLGATE_LISTEN": ":" + port, "TOLLGATE_BIND": "127.0.0.1",
		"TOLLGATE_UPSTREAM": up.Listener.Addr().String(), "TOLLGATE_REDIS_URL": meteringtest.RedisURL(),
		"TOLLGATE_DATABASE_URL": db.String(), "TOLLGATE_REDIS_PREFIX": b.Prefix,
		"TOLLGATE_KEY_PEPPER": "test-pepper", "TOLLGATE_ADMIN_TOKEN": "admin-secret"} {
		t.Setenv(k, v)
	}
	src, err := os.ReadFile("../../Caddyfile")
	require.NoError(t, err)
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
	require.NoError(t, err)
	require.Empty(t, warn)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(cfg, &doc))
	doc["admin"] = map[string]any{"disabled": true} // no Caddy admin endpoint on :2019 in tests
	cfg, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, caddy.Load(cfg, true))
	t.Cleanup(func() { caddy.Stop() })
	return "http://127.0.0.1:" + port
}

// Item 10: what `make run`'s curl lines do, through the quick-start
// Caddyfile with the openai-go SDK: every kind of request the README
// meters is answered by the demo upstream with OpenAI's usage and charged
// exactly that at the demo price, and each JSON answer's
// X-Credits-Remaining is the balance after it.
func TestQuickStartMetersEveryKind(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	_, err := b.Engine.PutPrice(ctx, "test", demoPrice)
	require.NoError(t, err)
	base := startQuickStart(t, b)
	balance := 1000 * metering.Micro
	_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "demo-user", InitialCredits: balance})
	require.NoError(t, err)
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))

	// charged checks one request's cost against the ledger and its
	// X-Credits-Remaining (when the answer was held for its settlement).
	charged := func(t *testing.T, cost metering.Credits, hr *http.Response, settledHeader bool) {
		t.Helper()
		balance -= cost
		require.Eventually(t, func() bool {
			v, err := b.Engine.GetUser(ctx, "demo-user")
			require.NoError(t, err)
			return v.InFlight == 0
		}, 10*time.Second, 2*time.Millisecond, "demo-user's requests are settled")
		v, err := b.Engine.GetUser(ctx, "demo-user")
		require.NoError(t, err)
		require.Equal(t, balance, v.Live.Effective)
		if settledHeader {
			require.Equal(t, balance.String(), hr.Header.Get("X-Credits-Remaining"))
		}
	}

	t.Run("chat", func(t *testing.T) {
		var hr *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "demo",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")}}, option.WithResponseInto(&hr))
		require.NoError(t, err)
		require.Equal(t, int64(2), resp.Usage.PromptTokens)
		charged(t, demoPrice.Cost(metering.Units{InputTokens: 2, OutputTokens: resp.Usage.CompletionTokens}), hr, true)
	})

	t.Run("embeddings", func(t *testing.T) {
		var hr *http.Response
		resp, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "demo",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello world", "again"}}}, option.WithResponseInto(&hr))
		require.NoError(t, err)
		require.Len(t, resp.Data, 2)
		require.Len(t, resp.Data[1].Embedding, defaultDimensions)
		require.Equal(t, int64(3), resp.Usage.PromptTokens)
		charged(t, demoPrice.Cost(metering.Units{InputTokens: 3}), hr, true)
	})

	var wav []byte
	t.Run("speech", func(t *testing.T) {
		input := "Hello from Tollgate" // 19 characters: 1.14 s of audio
		var hr *http.Response
		resp, err := c.Audio.Speech.New(ctx, openai.AudioSpeechNewParams{Model: "demo", Input: input,
			Voice:          openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")},
			ResponseFormat: openai.AudioSpeechNewParamsResponseFormatWAV}, option.WithResponseInto(&hr))
		require.NoError(t, err)
		wav, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, int64(19*millisPerChar), audioMillis(wav))
		// No usage in a speech answer: the characters (and the body's
		// bytes as input tokens, the estimate's bound) are charged.
		body, err := json.Marshal(openai.AudioSpeechNewParams{Model: "demo", Input: input,
			Voice:          openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")},
			ResponseFormat: openai.AudioSpeechNewParamsResponseFormatWAV})
		require.NoError(t, err)
		charged(t, demoPrice.Cost(metering.Units{Characters: 19, InputTokens: int64(len(body))}), hr, false)
	})

	t.Run("transcription of that speech", func(t *testing.T) {
		var hr *http.Response
		resp, err := c.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{Model: "demo",
			File: openai.File(bytes.NewReader(wav), "hello.wav", "audio/wav")}, option.WithResponseInto(&hr))
		require.NoError(t, err)
		require.Contains(t, resp.Text, "1.14 seconds")
		require.Equal(t, 1.14, resp.Usage.Seconds)
		charged(t, demoPrice.Cost(metering.Units{AudioMillis: 1140}), hr, true)
	})

	t.Run("image", func(t *testing.T) {
		var hr *http.Response
		resp, err := c.Images.Generate(ctx, openai.ImageGenerateParams{Model: "demo", Prompt: "a red lighthouse",
			N: openai.Int(2)}, option.WithResponseInto(&hr))
		require.NoError(t, err)
		require.Len(t, resp.Data, 2)
		require.NotEmpty(t, resp.Data[0].B64JSON)
		require.Equal(t, int64(3), resp.Usage.InputTokens)
		require.Equal(t, int64(2*outputTokensPerImage), resp.Usage.OutputTokens)
		charged(t, demoPrice.Cost(metering.Units{InputTokens: 3, OutputTokens: 2 * outputTokensPerImage, Images: 2}), hr, true)
	})

	b.Drain(t)
	b.AssertConsistent(t)
}
