package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/metering"
)

// endpoint is the kind of OpenAI-style call a request is, which decides
// how its usage is estimated before and read after the response.
type endpoint int

const (
	epGeneric       endpoint = iota // any JSON body: its size, plus the output cap
	epChat                          // /chat/completions
	epCompletions                   // /completions (legacy text)
	epEmbeddings                    // /embeddings
	epResponses                     // /responses
	epSpeech                        // /audio/speech: priced by input characters
	epTranscription                 // /audio/transcriptions, /audio/translations: multipart audio
	epImages                        // /images/generations, /images/edits, /images/variations
)

// endpointOf classifies a request path by its suffix, so a route mounted
// under any prefix (/v1, /openai/v1, ...) is recognised.
func endpointOf(path string) endpoint {
	path = strings.TrimSuffix(path, "/")
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return epChat
	case strings.HasSuffix(path, "/completions"):
		return epCompletions
	case strings.HasSuffix(path, "/embeddings"):
		return epEmbeddings
	case strings.HasSuffix(path, "/responses"):
		return epResponses
	case strings.HasSuffix(path, "/audio/speech"):
		return epSpeech
	case strings.HasSuffix(path, "/audio/transcriptions"), strings.HasSuffix(path, "/audio/translations"):
		return epTranscription
	case strings.Contains(path, "/images/"):
		return epImages
	}
	return epGeneric
}

// Token estimation. Tokenizers average about four characters of English
// per token; counting bytes rather than runes keeps the estimate on the
// high side for other scripts (a CJK character is 3 bytes and about one
// token), and every message adds a fixed overhead for its role and framing.
const (
	bytesPerToken       = 4
	perMessageOverhead  = 4 // OpenAI's documented per-message framing is 3-4 tokens
	perRequestOverhead  = 3 // the reply's priming tokens
	defaultMaxOutput    = 4096
	defaultAudioSeconds = 600
	maxModelName        = 256
)

// tokensFor is n bytes of text as tokens, rounded up.
func tokensFor(n int) int64 { return (int64(n) + bytesPerToken - 1) / bytesPerToken }

// estimateConfig is the route's limits for what the request cannot say.
type estimateConfig struct {
	MaxOutputTokens int64 // when the request sets no max_tokens
	AudioSeconds    int64 // a transcription's reserved duration (unknown before the upstream answers)
}

// estimate is what the handler learned from a request body.
type estimate struct {
	Kind  endpoint
	Model string
	Units metering.Units
	// Stream: the client asked for an SSE stream.
	Stream bool
	// ClientWantsUsage: the client itself set stream_options.include_usage,
	// so the usage chunk is the client's to see.
	ClientWantsUsage bool
	// Body, when not nil, replaces the request body upstream (usage asked for).
	Body []byte
}

var errNotJSON = errors.New("the request body is not valid JSON")

// estimateRequest reads what a request will use. body is the whole request
// body (already bounded by the caller); an empty body estimates nothing.
func estimateRequest(kind endpoint, contentType string, body []byte, cfg estimateConfig) (estimate, error) {
	if cfg.MaxOutputTokens <= 0 {
		cfg.MaxOutputTokens = defaultMaxOutput
	}
	if cfg.AudioSeconds <= 0 {
		cfg.AudioSeconds = defaultAudioSeconds
	}
	est := estimate{Kind: kind}
	if kind == epTranscription {
		est.Model = multipartModel(contentType, body)
		est.Units.AudioMillis = cfg.AudioSeconds * 1000
		return est, nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return est, nil
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return est, errNotJSON
	}
	est.Model = jsonString(req["model"])
	if len(est.Model) > maxModelName {
		est.Model = est.Model[:maxModelName] // the price lookup will not find it either way
	}
	outputCap := func(keys ...string) int64 {
		for _, k := range keys {
			if v, ok := jsonInt(req[k]); ok && v > 0 {
				return v
			}
		}
		return cfg.MaxOutputTokens
	}
	choices := int64(1)
	if n, ok := jsonInt(req["n"]); ok && n > 1 {
		choices = n
	}

	switch kind {
	case epChat:
		est.Units.InputTokens = chatInputTokens(req["messages"]) + tokensFor(len(req["tools"])) + tokensFor(len(req["functions"]))
		est.Units.OutputTokens = outputCap("max_completion_tokens", "max_tokens") * choices
	case epCompletions:
		est.Units.InputTokens = textInputTokens(req["prompt"]) + tokensFor(len(jsonString(req["suffix"])))
		est.Units.OutputTokens = outputCap("max_tokens") * choices
	case epEmbeddings:
		est.Units.InputTokens = textInputTokens(req["input"])
	case epResponses:
		est.Units.InputTokens = responsesInputTokens(req["input"]) + tokensFor(len(jsonString(req["instructions"]))) + tokensFor(len(req["tools"]))
		est.Units.OutputTokens = outputCap("max_output_tokens")
	case epSpeech:
		input := jsonString(req["input"])
		// Speech is priced per character of input (and, for token-priced
		// voices, per input token): both are exact before the call.
		est.Units.Characters = int64(utf8.RuneCountInString(input))
		est.Units.InputTokens = tokensFor(len(input))
	case epImages:
		est.Units.Images = choices
		est.Units.InputTokens = tokensFor(len(jsonString(req["prompt"])))
	default:
		// An unknown JSON call: the whole body as input, plus the cap.
		est.Units.InputTokens = tokensFor(len(body))
		est.Units.OutputTokens = outputCap("max_completion_tokens", "max_tokens", "max_output_tokens")
	}

	if (kind == epChat || kind == epCompletions) && jsonBool(req["stream"]) {
		est.Stream = true
		var opts map[string]json.RawMessage
		_ = json.Unmarshal(req["stream_options"], &opts)
		est.ClientWantsUsage = jsonBool(opts["include_usage"])
		if !est.ClientWantsUsage {
			// Ask upstream for the usage chunk; the capture drops it again
			// before the client sees something it did not ask for.
			if opts == nil {
				opts = map[string]json.RawMessage{}
			}
			opts["include_usage"] = json.RawMessage("true")
			req["stream_options"], _ = json.Marshal(opts)
			b, err := json.Marshal(req)
			if err != nil {
				return est, err
			}
			est.Body = b
		}
	}
	return est, nil
}

// chatInputTokens estimates chat messages: each message's text (string
// content or the text of its parts; other parts and fields such as
// tool_calls by their JSON size) plus the per-message overhead.
func chatInputTokens(raw json.RawMessage) int64 {
	var msgs []map[string]json.RawMessage
	if json.Unmarshal(raw, &msgs) != nil {
		return tokensFor(len(raw))
	}
	total := int64(perRequestOverhead)
	for _, m := range msgs {
		total += perMessageOverhead
		for k, v := range m {
			switch k {
			case "role":
			case "content":
				total += contentTokens(v)
			default:
				total += tokensFor(len(v))
			}
		}
	}
	return total
}

// contentTokens is a message content: a string, or a list of parts whose
// text counts as text and anything else (images, audio) by its JSON size.
func contentTokens(raw json.RawMessage) int64 {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return tokensFor(len(s))
	}
	var parts []map[string]json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return tokensFor(len(raw))
	}
	var total int64
	for _, p := range parts {
		if t, ok := p["text"]; ok {
			total += tokensFor(len(jsonString(t)))
			continue
		}
		b, _ := json.Marshal(p)
		total += tokensFor(len(b))
	}
	return total
}

// textInputTokens is a prompt or embeddings input: a string, a list of
// strings, a list of token ids, or a list of lists of token ids.
func textInputTokens(raw json.RawMessage) int64 {
	if len(raw) == 0 {
		return 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return tokensFor(len(s))
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return tokensFor(len(raw))
	}
	var total int64
	for _, it := range items {
		var s string
		var ids []json.RawMessage
		switch {
		case json.Unmarshal(it, &s) == nil:
			total += tokensFor(len(s))
		case json.Unmarshal(it, &ids) == nil:
			total += int64(len(ids))
		default:
			total++ // one token id
		}
	}
	return total
}

// responsesInputTokens is the Responses API input: a string or a list of
// items, which count like chat messages.
func responsesInputTokens(raw json.RawMessage) int64 {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return perRequestOverhead + perMessageOverhead + tokensFor(len(s))
	}
	return chatInputTokens(raw)
}

// multipartModel reads the "model" field of a multipart form without
// holding more than the field itself (the audio part is skipped).
func multipartModel(contentType string, body []byte) string {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return ""
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return ""
		}
		if p.FormName() == "model" {
			b, _ := io.ReadAll(io.LimitReader(p, maxModelName))
			return strings.TrimSpace(string(b))
		}
	}
}

func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func jsonBool(raw json.RawMessage) bool {
	var b bool
	return len(raw) != 0 && json.Unmarshal(raw, &b) == nil && b
}

// jsonInt reads a non-negative integer; anything else (a float, a string,
// a huge number) is "absent", and the caller's cap applies.
func jsonInt(raw json.RawMessage) (int64, bool) {
	var v int64
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil || v < 0 || v > maxTokensValue {
		return 0, false
	}
	return v, true
}

// maxTokensValue bounds any token count read from a request, so an
// estimate times a price cannot overflow (Price.Cost saturates anyway).
const maxTokensValue = 1 << 40
