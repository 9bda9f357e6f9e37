package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
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

// in is the input bound of a JSON body: its bytes plus the template.
func in(body string, overhead int64) int64 { return int64(len(body)) + overhead }

func TestEstimateRequest(t *testing.T) {
	t.Parallel()
	cfg := estimateConfig{MaxOutputTokens: 1000, AudioSeconds: 60, ImageTokens: 500}
	const (
		chat2   = `{"model":"gpt-4o","messages":[{"role":"system","content":"brief"},{"role":"user","content":"hi there"}]}`
		chatMax = `{"model":"m","max_tokens":50,"n":3,"messages":[{"role":"user","content":"abcd"}]}`
		chatBo  = `{"model":"m","max_completion_tokens":7,"max_tokens":50,"messages":[]}`
		image   = `{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}`
		chatImg = `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"12345678"},` + image + `]}]}`
		cjk     = `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"日本語のテキスト"}]}`
		streamU = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`
		compl   = `{"model":"m","prompt":["abcd","abcde"],"max_tokens":5,"n":2,"best_of":4}`
		embed   = `{"model":"e","input":[[1,2,3],[4]]}`
		speech  = `{"model":"tts-1","input":"héllo","voice":"alloy"}`
		images  = `{"model":"dall-e-3","prompt":"a cat","n":2}`
		resp    = `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"abc"},{"type":"input_image","image_url":"https://x/y.png"}]}],"max_output_tokens":9}`
		generic = `{"model":"m","max_output_tokens":12}`
	)
	imgData := int64(len(`{"url":"data:image/png;base64,AAAA"}`))
	cases := []struct {
		name  string
		kind  endpoint
		body  string
		model string
		units metering.Units
		limit string // the output limit the gateway adds
	}{
		{name: "empty body", kind: epChat},
		{name: "chat strings", kind: epChat, body: chat2, model: "gpt-4o",
			units: metering.Units{InputTokens: in(chat2, 3+2*4), OutputTokens: 1000}, limit: "max_completion_tokens"},
		{name: "chat max_tokens and n", kind: epChat, body: chatMax, model: "m",
			units: metering.Units{InputTokens: in(chatMax, 3+4), OutputTokens: 150}},
		{name: "chat: the larger of two limits", kind: epChat, body: chatBo, model: "m",
			units: metering.Units{InputTokens: in(chatBo, 3), OutputTokens: 50}},
		{name: "chat image part: image_tokens instead of its data", kind: epChat, body: chatImg, model: "m",
			units: metering.Units{InputTokens: in(chatImg, 3+4) - imgData + 500, OutputTokens: 1000}, limit: "max_completion_tokens"},
		{name: "non-ASCII text: a token per byte", kind: epChat, body: cjk, model: "m",
			units: metering.Units{InputTokens: in(cjk, 3+4), OutputTokens: 1}},
		{name: "stream with usage", kind: epChat, body: streamU, model: "m",
			units: metering.Units{InputTokens: in(streamU, 3), OutputTokens: 1000}, limit: "max_completion_tokens"},
		{name: "completions: best_of counts", kind: epCompletions, body: compl, model: "m",
			units: metering.Units{InputTokens: in(compl, 3), OutputTokens: 5 * 4}},
		{name: "embeddings", kind: epEmbeddings, body: embed, model: "e", units: metering.Units{InputTokens: in(embed, 0)}},
		{name: "speech counts characters", kind: epSpeech, body: speech, model: "tts-1",
			units: metering.Units{Characters: 5, InputTokens: in(speech, 0)}},
		{name: "images n", kind: epImages, body: images, model: "dall-e-3", units: metering.Units{Images: 2, InputTokens: in(images, 0), OutputTokens: 2 * 500}},
		{name: "responses with an image", kind: epResponses, body: resp, model: "m",
			units: metering.Units{InputTokens: in(resp, 3+4) - int64(len(`"https://x/y.png"`)) + 500, OutputTokens: 9}},
		{name: "generic: no limit added", kind: epGeneric, body: generic, model: "m",
			units: metering.Units{InputTokens: in(generic, 0), OutputTokens: 12}},
	}
	for _, c := range cases {
		est, err := estimateRequest(c.kind, "application/json", []byte(c.body), cfg)
		require.NoError(t, err, c.name)
		require.Equal(t, c.model, est.Model, c.name)
		require.Equal(t, c.units, est.Units, c.name)
		require.Equal(t, c.limit, est.limitField, c.name)
	}
	est, err := estimateRequest(epChat, "application/json", []byte(`{"messages":[]}`), estimateConfig{})
	require.NoError(t, err)
	require.Equal(t, int64(defaultMaxOutput), est.Units.OutputTokens, "default cap")
}

// The upstream receives the bytes the estimate read, plus exactly the
// members the gateway adds.
func TestUpstreamBody(t *testing.T) {
	t.Parallel()
	cfg := estimateConfig{MaxOutputTokens: 100}
	cases := []struct {
		kind       endpoint
		body, want string
	}{
		{epChat, `{"model":"m","max_tokens":5,"messages":[]}`, ""},
		{epChat, `{"model":"m","messages":[]}`, `{"max_completion_tokens":42,"model":"m","messages":[]}`},
		{epChat, ` { } `, ` {"max_completion_tokens":42 } `},
		{epChat, `{"model":"m","max_completion_tokens":null}`, `{"model":"m","max_completion_tokens":42}`},
		{epChat, `{"model":"m","max_tokens":5,"stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","max_tokens":5,"stream":true}`},
		{epChat, `{"model":"m","max_tokens":5,"stream":true,"stream_options":null}`, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`},
		{epChat, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{}}`, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`},
		{epChat, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{"x":1}}`, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{epChat, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{"include_usage":false}}`, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`},
		{epChat, `{"model":"m","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`, ""},
		{epChat, `{"stream":true}`, `{"stream_options":{"include_usage":true},"max_completion_tokens":42,"stream":true}`},
		{epCompletions, `{"model":"m","prompt":"x"}`, `{"max_tokens":42,"model":"m","prompt":"x"}`},
		{epResponses, `{"model":"m","input":"x","stream":true}`, `{"max_output_tokens":42,"model":"m","input":"x","stream":true}`},
		{epEmbeddings, `{"model":"m","input":"x"}`, ""},
		{epGeneric, `{"model":"m"}`, ""},
	}
	for _, c := range cases {
		est, err := estimateRequest(c.kind, "application/json", []byte(c.body), cfg)
		require.NoError(t, err, c.body)
		if est.adjustable() {
			est.setPerChoice(42)
		}
		got := est.upstreamBody()
		if c.want == "" {
			require.Nil(t, got, c.body)
			continue
		}
		require.Equal(t, c.want, string(got), c.body)
		require.True(t, json.Valid(got))
	}

	cfg.ChatLimitField = "max_tokens"
	est, err := estimateRequest(epChat, "application/json", []byte(`{"model":"m","max_tokens":null}`), cfg)
	require.NoError(t, err)
	require.Equal(t, `{"model":"m","max_tokens":100}`, string(est.upstreamBody()))
}

// Bodies that upstream parsers could read differently from the gateway,
// and limits that are not limits, are refused naming the field.
func TestEstimateRefuses(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)
	cases := []struct {
		kind        endpoint
		body        string
		code, param string
	}{
		{epChat, `{"MODEL":"dear","model":"cheap"}`, "ambiguous_field", "model"},
		{epChat, `{"model":"cheap","Model":"dear"}`, "ambiguous_field", "model"},
		{epChat, `{"MODEL":"dear"}`, "ambiguous_field", "model"},
		{epChat, `{"model":"m","max_to` + "\u212a" + `ens":9999}`, "ambiguous_field", "max_tokens"}, // Kelvin sign folds to k
		{epChat, `{"model":"cheap","model":"dear"}`, "invalid_json", ""},
		{epChat, `{"mod\u0065l":"dear","model":"cheap"}`, "invalid_json", ""},
		{epChat, `{"model":"m","messages":[{"role":"user","content":"a","content":"b"}]}`, "invalid_json", ""},
		{epChat, `{"model":"m","tools":[{"function":{"parameters":{"a":1,"a":2}}}]}`, "invalid_json", ""},
		{epChat, `{"model":"m","messages":[{"role":"user","CONTENT":[{"type":"image_url"}]}]}`, "ambiguous_field", "messages[0].content"},
		{epChat, `{"model":"m","messages":[{"content":[{"Type":"text","type":"image_url"}]}]}`, "ambiguous_field", "messages[0].content[0].type"},
		{epChat, `{"model":"m","stream":true,"stream_options":{"Include_Usage":false}}`, "ambiguous_field", "stream_options.include_usage"},
		{epResponses, `{"model":"m","input":[{"Content":"x"}]}`, "ambiguous_field", "input[0].content"},
		{epChat, "\xef\xbb\xbf" + `{"model":"m"}`, "invalid_json", ""},
		{epChat, `{"model":"m"} {"model":"dear"}`, "invalid_json", ""},
		{epChat, `{"model":"m"}x`, "invalid_json", ""},
		{epChat, "{\"model\":\"m\xff\"}", "invalid_json", ""},
		{epChat, `{"model\u0000":"dear","model":"m"}`, "invalid_json", ""},
		{epChat, `{"\ud800":1}`, "invalid_json", ""},
		{epChat, `{"model":"m","x":` + deep + `}`, "invalid_json", ""},
		{epChat, `{"model":01}`, "invalid_json", ""},
		{epChat, `["model"]`, "invalid_json", ""},
		{epChat, `{"model":"gpt\u0000x"}`, "invalid_model", "model"},
		{epChat, `{"model":"a b"}`, "invalid_model", "model"},
		{epChat, `{"model":"` + strings.Repeat("m", 129) + `"}`, "invalid_model", "model"},
		{epChat, `{"model":7}`, "invalid_value", "model"},
		{epChat, `{"model":"m","max_tokens":4.0}`, "invalid_value", "max_tokens"},
		{epChat, `{"model":"m","max_tokens":4e1}`, "invalid_value", "max_tokens"},
		{epChat, `{"model":"m","max_tokens":"40"}`, "invalid_value", "max_tokens"},
		{epChat, `{"model":"m","max_tokens":-1}`, "invalid_value", "max_tokens"},
		{epChat, `{"model":"m","max_tokens":0}`, "invalid_value", "max_tokens"},
		{epChat, `{"model":"m","max_completion_tokens":99999999999999999999}`, "invalid_value", "max_completion_tokens"},
		{epChat, `{"model":"m","n":"2"}`, "invalid_value", "n"},
		{epChat, `{"model":"m","n":129}`, "invalid_value", "n"},
		{epCompletions, `{"model":"m","best_of":2.5}`, "invalid_value", "best_of"},
		{epResponses, `{"model":"m","max_output_tokens":1.5}`, "invalid_value", "max_output_tokens"},
		{epImages, `{"model":"m","n":"3"}`, "invalid_value", "n"},
		{epChat, `{"model":"m","stream":"true"}`, "invalid_value", "stream"},
		{epChat, `{"model":"m","stream":true,"stream_options":"yes"}`, "invalid_value", "stream_options"},
		{epChat, `{"model":"m","stream":true,"stream_options":{"include_usage":1}}`, "invalid_value", "stream_options.include_usage"},
		{epChat, `{"model":"m","messages":{}}`, "invalid_value", "messages"},
		{epSpeech, `{"model":"tts-1","input":["a"]}`, "invalid_value", "input"},
		{epTranscription, `{"model":"whisper-1"}`, "invalid_request", ""},
	}
	for _, c := range cases {
		_, err := estimateRequest(c.kind, "application/json", []byte(c.body), estimateConfig{})
		require.Error(t, err, c.body)
		var re *requestError
		var se *syntaxError
		switch {
		case errors.As(err, &re):
			require.Equal(t, c.code, re.code, "%s: %v", c.body, err)
			require.Equal(t, c.param, re.param, c.body)
		case errors.As(err, &se):
			require.Equal(t, "invalid_json", c.code, "%s: %v", c.body, err)
		default:
			t.Fatalf("%s: %T %v", c.body, err, err)
		}
	}
}

// formBody builds a multipart body from name/value pairs in order; a name
// of "file" gets a filename.
func formBody(t *testing.T, fields ...string) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i < len(fields); i += 2 {
		var w interface{ Write([]byte) (int, error) }
		var err error
		if fields[i] == "file" || strings.HasPrefix(fields[i], "image") {
			w, err = mw.CreateFormFile(fields[i], "clip.mp3")
		} else {
			w, err = mw.CreateFormField(fields[i])
		}
		require.NoError(t, err)
		w.Write([]byte(fields[i+1]))
	}
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), buf.Bytes()
}

func TestEstimateTranscription(t *testing.T) {
	t.Parallel()
	audio := strings.Repeat("\x01", 10000)
	ct, body := formBody(t, "file", audio, "model", "whisper-1", "language", "en")
	est, err := estimateRequest(epTranscription, ct, body, estimateConfig{AudioSeconds: 90})
	require.NoError(t, err)
	require.Equal(t, "whisper-1", est.Model)
	require.Equal(t, metering.Units{AudioMillis: 90_000}, est.Units)

	// The upstream gets a canonical rebuild that Go's own form parser
	// reads the same way, the audio byte for byte.
	up := est.upstreamBody()
	req, _ := http.NewRequest("POST", "/", bytes.NewReader(up))
	req.Header.Set("Content-Type", est.contentType)
	require.NoError(t, req.ParseMultipartForm(1<<20))
	require.Equal(t, []string{"whisper-1"}, req.MultipartForm.Value["model"])
	require.Equal(t, []string{"en"}, req.MultipartForm.Value["language"])
	f, fh, err := req.FormFile("file")
	require.NoError(t, err)
	require.Equal(t, "clip.mp3", fh.Filename)
	var got bytes.Buffer
	got.ReadFrom(f)
	require.Equal(t, audio, got.String())

	// The measured duration, when the seam knows it, is reserved instead.
	var seen []byte
	measure := func(filename, _ string, a []byte) (int64, error) {
		seen = a
		if filename != "clip.mp3" {
			return 0, errors.New("not this one")
		}
		return 12_345, nil
	}
	est, err = estimateRequest(epTranscription, ct, body, estimateConfig{AudioSeconds: 90, AudioDuration: measure})
	require.NoError(t, err)
	require.Equal(t, int64(12_345), est.Units.AudioMillis)
	require.Equal(t, audio, string(seen))
}

func TestEstimateMultipartRefuses(t *testing.T) {
	t.Parallel()
	refused := func(ct string, body []byte, code, param string) {
		t.Helper()
		_, err := estimateRequest(epTranscription, ct, body, estimateConfig{})
		var re *requestError
		require.ErrorAs(t, err, &re)
		require.Equal(t, code, re.code, "%v", err)
		require.Equal(t, param, re.param)
	}
	ct, body := formBody(t, "model", "whisper-1", "file", "x", "model", "gpt-4o-transcribe")
	refused(ct, body, "ambiguous_field", "model")
	ct, body = formBody(t, "MODEL", "gpt-4o-transcribe", "model", "whisper-1", "file", "x")
	refused(ct, body, "ambiguous_field", "model")
	ct, body = formBody(t, "model", "whisper 1", "file", "x")
	refused(ct, body, "invalid_model", "model")
	ct, body = formBody(t, "model", "whisper-1", "file", "x", "file", "y")
	refused(ct, body, "ambiguous_field", "file")

	// A part another parser might read with another name, or decode.
	raw := func(headers ...string) (string, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		h := textproto.MIMEHeader{}
		for i := 0; i < len(headers); i += 2 {
			h.Add(headers[i], headers[i+1])
		}
		w, _ := mw.CreatePart(h)
		w.Write([]byte("whisper-1"))
		mw.Close()
		return mw.FormDataContentType(), buf.Bytes()
	}
	ct, body = raw("Content-Disposition", `form-data; name="file"`, "Content-Disposition", `form-data; name="model"`)
	refused(ct, body, "invalid_multipart", "")
	ct, body = raw("Content-Disposition", `form-data; name="model"`, "Content-Transfer-Encoding", "quoted-printable")
	refused(ct, body, "invalid_multipart", "")
	ct, body = raw("Content-Disposition", `form-data; name="model"; name="file"`)
	refused(ct, body, "invalid_multipart", "")
	ct, body = raw("Content-Disposition", `attachment; name="model"`)
	refused(ct, body, "invalid_multipart", "")
	refused("multipart/form-data", []byte("x"), "invalid_multipart", "")

	// Multipart where JSON is expected.
	_, err := estimateRequest(epChat, ct, body, estimateConfig{})
	var re *requestError
	require.ErrorAs(t, err, &re)
}

func TestEstimateImageEdit(t *testing.T) {
	t.Parallel()
	ct, body := formBody(t, "image[]", "png1", "image[]", "png2", "prompt", "a hat", "model", "gpt-image-1", "n", "3")
	est, err := estimateRequest(epImages, ct, body, estimateConfig{ImageTokens: 100})
	require.NoError(t, err)
	require.Equal(t, "gpt-image-1", est.Model)
	require.Equal(t, metering.Units{Images: 3, InputTokens: 5 + 2*100, OutputTokens: 3 * 100}, est.Units)
	ct, body = formBody(t, "image", "png", "n", "3.0")
	_, err = estimateRequest(epImages, ct, body, estimateConfig{})
	var re *requestError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "n", re.param)
}

func TestAffordableOutput(t *testing.T) {
	t.Parallel()
	p := metering.Price{InputPerMillion: 1000 * metering.Micro, OutputPerMillion: 2000 * metering.Micro}
	u := metering.Units{InputTokens: 10} // 10,000 µcr
	require.Equal(t, int64(0), affordableOutput(p, u, 1, 100, 9_999))
	require.Equal(t, int64(0), affordableOutput(p, u, 1, 100, 10_000))
	require.Equal(t, int64(45), affordableOutput(p, u, 1, 100, 100_000))
	require.Equal(t, int64(22), affordableOutput(p, u, 2, 100, 100_000))
	require.Equal(t, int64(100), affordableOutput(p, u, 1, 100, 1<<40))
	// Whatever the budget, what is answered is affordable and one more is not.
	for budget := metering.Credits(10_000); budget < 300_000; budget += 7_919 {
		k := affordableOutput(p, u, 3, 1000, budget)
		u.OutputTokens = k * 3
		require.LessOrEqual(t, p.Cost(u), budget)
		u.OutputTokens = (k + 1) * 3
		require.Greater(t, p.Cost(u), budget)
		u.OutputTokens = 0
	}
}

// isMultipart's fast path for JSON types answers as mime.ParseMediaType does.
func TestIsMultipartMatchesTheParser(t *testing.T) {
	parsed := func(ct string) bool {
		mt, _, _ := mime.ParseMediaType(ct)
		return strings.HasPrefix(mt, "multipart/")
	}
	for _, ct := range []string{"", "application/json", "APPLICATION/JSON; charset=utf-8", "application/", "applicatio",
		"multipart/form-data; boundary=x", "Multipart/Form-Data; boundary=x", " multipart/form-data; boundary=x",
		"multipart/form-data; bad", "MULT\u0130PART/form-data", "text/plain", "application/multipart"} {
		require.Equal(t, parsed(ct), isMultipart(ct), "%q", ct)
	}
}
