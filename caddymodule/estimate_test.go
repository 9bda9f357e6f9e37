package caddymodule

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func TestEndpointOf(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]endpoint{
		"/v1/chat/completions":         epChat,
		"/openai/v1/chat/completions/": epChat,
		"/v1/completions":              epCompletions,
		"/v1/embeddings":               epEmbeddings,
		"/v1/responses":                epResponses,
		"/v1/audio/speech":             epSpeech,
		"/v1/audio/transcriptions":     epTranscription,
		"/v1/audio/translations":       epTranscription,
		"/v1/images/generations":       epImages,
		"/v1/images/edits":             epImages,
		"/v1/moderations":              epGeneric,
	} {
		require.Equal(t, want, endpointOf(path), path)
	}
}

func TestEstimateRequest(t *testing.T) {
	t.Parallel()
	cfg := estimateConfig{MaxOutputTokens: 1000, AudioSeconds: 60}
	cases := []struct {
		name   string
		kind   endpoint
		body   string
		model  string
		units  metering.Units
		stream bool
		wants  bool
	}{
		{name: "empty body", kind: epChat, body: "", units: metering.Units{}},
		// 3 + (4 + ceil(5/4)=2) + (4 + ceil(8/4)=2) = 15
		{name: "chat strings", kind: epChat, model: "gpt-4o",
			body:  `{"model":"gpt-4o","messages":[{"role":"system","content":"brief"},{"role":"user","content":"hi there"}]}`,
			units: metering.Units{InputTokens: 15, OutputTokens: 1000}},
		{name: "chat max_tokens and n", kind: epChat, model: "m",
			body:  `{"model":"m","max_tokens":50,"n":3,"messages":[{"role":"user","content":"abcd"}]}`,
			units: metering.Units{InputTokens: 3 + 4 + 1, OutputTokens: 150}},
		{name: "chat max_completion_tokens wins", kind: epChat, model: "m",
			body:  `{"model":"m","max_completion_tokens":7,"max_tokens":50,"messages":[]}`,
			units: metering.Units{InputTokens: 3, OutputTokens: 7}},
		{name: "chat parts", kind: epChat, model: "m",
			body: `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"12345678"},{"type":"image_url","image_url":{"url":"x"}}]}]}`,
			// image part {"image_url":{"url":"x"},"type":"image_url"} is 44 bytes: 11 tokens
			units: metering.Units{InputTokens: 3 + 4 + 2 + 11, OutputTokens: 1000}},
		{name: "chat garbage max_tokens uses cap", kind: epChat, model: "m",
			body:  `{"model":"m","max_tokens":"lots","messages":[]}`,
			units: metering.Units{InputTokens: 3, OutputTokens: 1000}},
		{name: "stream without usage asks for it", kind: epChat, model: "m", stream: true,
			body:  `{"model":"m","stream":true,"messages":[]}`,
			units: metering.Units{InputTokens: 3, OutputTokens: 1000}},
		{name: "stream with usage", kind: epChat, model: "m", stream: true, wants: true,
			body:  `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			units: metering.Units{InputTokens: 3, OutputTokens: 1000}},
		{name: "completions list", kind: epCompletions, model: "m",
			body:  `{"model":"m","prompt":["abcd","abcde"],"max_tokens":5}`,
			units: metering.Units{InputTokens: 3, OutputTokens: 5}},
		{name: "embeddings token ids", kind: epEmbeddings, model: "e",
			body:  `{"model":"e","input":[[1,2,3],[4]]}`,
			units: metering.Units{InputTokens: 4}},
		{name: "embeddings string", kind: epEmbeddings, model: "e",
			body:  `{"model":"e","input":"abcdefghi"}`,
			units: metering.Units{InputTokens: 3}},
		{name: "speech counts characters", kind: epSpeech, model: "tts-1",
			body:  `{"model":"tts-1","input":"héllo","voice":"alloy"}`,
			units: metering.Units{Characters: 5, InputTokens: 2}},
		{name: "images n", kind: epImages, model: "dall-e-3",
			body:  `{"model":"dall-e-3","prompt":"a cat","n":2}`,
			units: metering.Units{Images: 2, InputTokens: 2}},
		{name: "images default one", kind: epImages, model: "dall-e-3",
			body:  `{"model":"dall-e-3","prompt":""}`,
			units: metering.Units{Images: 1}},
		{name: "responses", kind: epResponses, model: "m",
			body:  `{"model":"m","input":"abcdefgh","max_output_tokens":9}`,
			units: metering.Units{InputTokens: 3 + 4 + 2, OutputTokens: 9}},
		{name: "generic", kind: epGeneric, model: "m",
			body:  `{"model":"m"}`,
			units: metering.Units{InputTokens: 4, OutputTokens: 1000}},
	}
	for _, c := range cases {
		est, err := estimateRequest(c.kind, "application/json", []byte(c.body), cfg)
		require.NoError(t, err, c.name)
		require.Equal(t, c.model, est.Model, c.name)
		require.Equal(t, c.units, est.Units, c.name)
		require.Equal(t, c.stream, est.Stream, c.name)
		require.Equal(t, c.wants, est.ClientWantsUsage, c.name)
		if c.stream && !c.wants {
			var got struct {
				StreamOptions struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
				Model string `json:"model"`
			}
			require.NoError(t, json.Unmarshal(est.Body, &got), c.name)
			require.True(t, got.StreamOptions.IncludeUsage, c.name)
			require.Equal(t, c.model, got.Model)
		} else {
			require.Nil(t, est.Body, c.name)
		}
	}

	_, err := estimateRequest(epChat, "application/json", []byte(`{"model":`), cfg)
	require.ErrorIs(t, err, errNotJSON)
	est, err := estimateRequest(epChat, "application/json", []byte(`{"messages":[]}`), estimateConfig{})
	require.NoError(t, err)
	require.Equal(t, int64(defaultMaxOutput), est.Units.OutputTokens, "default cap")
}

func TestEstimateTranscription(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "a.mp3")
	fw.Write(bytes.Repeat([]byte{1}, 10000))
	mw.WriteField("model", "whisper-1")
	mw.Close()
	est, err := estimateRequest(epTranscription, mw.FormDataContentType(), buf.Bytes(), estimateConfig{AudioSeconds: 90})
	require.NoError(t, err)
	require.Equal(t, "whisper-1", est.Model)
	require.Equal(t, metering.Units{AudioMillis: 90_000}, est.Units)

	est, err = estimateRequest(epTranscription, "application/json", []byte(`{}`), estimateConfig{})
	require.NoError(t, err)
	require.Equal(t, "", est.Model)
	require.Equal(t, int64(defaultAudioSeconds*1000), est.Units.AudioMillis)
}
