package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// insufficientConfig: priced chat under /v1 (402, the default) and under
// /quota (insufficient_status 429), a fixed cost of 1 credit elsewhere.
func insufficientConfig(t *testing.T, b *meteringtest.Bundle, listen, upstreamAddr string) string {
	return globalOptions(t, b, meteringtest.RedisURL(), "test") + fmt.Sprintf(`http://%[1]s {
	handle /v1/* {
		metering {
			price_by model
			max_output_tokens 100
		}
		reverse_proxy %[2]s
	}
	handle /quota/* {
		metering {
			price_by model
			max_output_tokens 100
			insufficient_status 429
		}
		reverse_proxy %[2]s
	}
	handle {
		metering 1
		reverse_proxy %[2]s
	}
}`, listen, upstreamAddr)
}

// refusal is the error object of an insufficient-credits answer.
type refusal struct {
	Code             string           `json:"code"`
	Type             string           `json:"type"`
	EffectiveCredits metering.Credits `json:"effective_credits"`
	RequiredCredits  metering.Credits `json:"required_credits"`
}

// sdkRefusal calls chat completions through the openai-go SDK, expects an
// API error and returns it with its decoded error object.
func sdkRefusal(t *testing.T, c openai.Client, p openai.ChatCompletionNewParams) (*openai.Error, refusal) {
	t.Helper()
	_, err := c.Chat.Completions.New(context.Background(), p)
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	var r refusal
	require.NoError(t, json.Unmarshal([]byte(apiErr.RawJSON()), &r), apiErr.RawJSON())
	return apiErr, r
}

// countingTransport counts the HTTP requests a client sends.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// Item 3: a refused request tells the app what it needed and what is
// left (body and X-Credits-Remaining); with insufficient_status 429 it is
// OpenAI's own answer for an exhausted quota, which the SDK raises as its
// rate-limit error, and x-should-retry: false keeps it from retrying.
func TestInsufficientCreditsAnswer(t *testing.T) {
	w := startWorld(t, insufficientConfig, "m")

	t.Run("fixed cost: the cost is required", func(t *testing.T) {
		key := w.user(t, "fixed", metering.Micro/2)
		req, err := http.NewRequest("GET", w.base+"/other", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := w.http.Do(req)
		require.NoError(t, err)
		var body struct{ Error refusal }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		require.Equal(t, 402, resp.StatusCode)
		require.Equal(t, refusal{Code: "insufficient_credits", Type: "insufficient_quota",
			EffectiveCredits: metering.Micro / 2, RequiredCredits: metering.Micro}, body.Error)
		require.Equal(t, "0.5", resp.Header.Get("X-Credits-Remaining"))
		require.Empty(t, resp.Header.Get("X-Should-Retry"), "402 is not retried by the SDKs anyway")
		require.Zero(t, w.up.count(), "refused requests do not reach the upstream")
	})

	t.Run("priced, the client's output limit: its reservation is required", func(t *testing.T) {
		c := w.client(w.user(t, "limited", 3))
		apiErr, r := sdkRefusal(t, c, chatParams("m", 50))
		require.Equal(t, 402, apiErr.StatusCode)
		require.Equal(t, "insufficient_credits", apiErr.Code)
		require.Equal(t, metering.Credits(3), r.EffectiveCredits)
		require.Equal(t, costOf(chatInput(t, "m", 50, false), 50), r.RequiredCredits)
		require.Equal(t, "0.000003", apiErr.Response.Header.Get("X-Credits-Remaining"))
	})

	t.Run("priced, the gateway's output limit: the least it accepts is required, and suffices", func(t *testing.T) {
		// No limit from the client: the gateway would reserve down to
		// min_output_tokens (16) per choice.
		least := costOf(chatInput(t, "m", 0, false), 16)
		apiErr, r := sdkRefusal(t, w.client(w.user(t, "short", least-1)), chatParams("m", 0))
		require.Equal(t, 402, apiErr.StatusCode)
		require.Equal(t, least-1, r.EffectiveCredits)
		require.Equal(t, least, r.RequiredCredits)

		enough := w.client(w.user(t, "enough", least))
		_, err := enough.Chat.Completions.New(context.Background(), chatParams("m", 0))
		require.NoError(t, err, "required_credits is enough")
		var sent map[string]any
		require.NoError(t, json.Unmarshal(w.up.last(t).body, &sent))
		require.EqualValues(t, 16, sent["max_completion_tokens"])
	})

	t.Run("429 with x-should-retry: false: the SDK's rate-limit error, not retried", func(t *testing.T) {
		start := metering.Credits(5)
		key := w.user(t, "quota", start)
		attempts := &countingTransport{}
		// Two retries allowed, as OpenAI's SDKs have by default.
		c := openai.NewClient(option.WithBaseURL(w.base+"/quota/"), option.WithAPIKey(key),
			option.WithMaxRetries(2), option.WithHTTPClient(&http.Client{Transport: attempts}))
		apiErr, r := sdkRefusal(t, c, chatParams("m", 50))
		require.Equal(t, 429, apiErr.StatusCode)
		require.Equal(t, "insufficient_credits", apiErr.Code)
		require.Equal(t, "insufficient_quota", apiErr.Type)
		require.Equal(t, "false", apiErr.Response.Header.Get("X-Should-Retry"))
		require.Equal(t, "0.000005", apiErr.Response.Header.Get("X-Credits-Remaining"))
		require.Equal(t, start, r.EffectiveCredits)
		require.Equal(t, costOf(chatInput(t, "m", 50, false), 50), r.RequiredCredits)
		require.Equal(t, int64(1), attempts.n.Load(), "the SDK did not retry")
		require.Equal(t, start, w.settled(t, "quota"), "refused is not charged")
	})

	w.b.Drain(t)
	w.b.AssertConsistent(t)
}
