package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// decode reads a JSON answer of status 200 into v.
func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// postForm sends a multipart form: fields, and a file part named file.
func postForm(t *testing.T, url, file string, content []byte, fields map[string]string) *http.Response {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != "" {
		fw, _ := mw.CreateFormFile(file, "upload.wav")
		_, _ = fw.Write(content)
	}
	_ = mw.Close()
	resp, err := http.Post(url, mw.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestEmbeddings(t *testing.T) {
	srv := newServer(t)
	var got struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	decode(t, post(t, srv, "/v1/embeddings", `{"model":"demo","input":["one two","three"]}`), &got)
	if got.Object != "list" || got.Model != "demo" || len(got.Data) != 2 || got.Data[1].Index != 1 ||
		got.Usage.PromptTokens != 3 || got.Usage.TotalTokens != 3 {
		t.Fatalf("unexpected answer %+v", got)
	}
	var v []float64
	if err := json.Unmarshal(got.Data[0].Embedding, &v); err != nil || len(v) != defaultDimensions {
		t.Fatalf("embedding %s: %v", got.Data[0].Embedding, err)
	}

	// base64 (the Python and Node SDKs' default): the same vector, as
	// little-endian float32s; token arrays count their tokens.
	decode(t, post(t, srv, "/v1/embeddings", `{"input":"one two","encoding_format":"base64","dimensions":16}`), &got)
	var s string
	if err := json.Unmarshal(got.Data[0].Embedding, &s); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != 4*16 {
		t.Fatalf("base64 embedding: %d bytes, %v", len(raw), err)
	}
	var norm float64
	for i := 0; i < 16; i++ {
		f := float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		norm += f * f
	}
	if math.Abs(norm-1) > 1e-5 {
		t.Fatalf("not a unit vector: |v|² = %v", norm)
	}
	decode(t, post(t, srv, "/v1/embeddings", `{"input":[[1,2,3],[4]]}`), &got)
	if len(got.Data) != 2 || got.Usage.PromptTokens != 4 {
		t.Fatalf("token arrays: %+v", got)
	}
	for _, bad := range []string{`{"input":[]}`, `{"input":{}}`, `{"input":`} {
		if resp := post(t, srv, "/v1/embeddings", bad); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: status %d, want 400", bad, resp.StatusCode)
		}
	}
}

// Speech comes back as WAV (or raw PCM) as long as the text takes to read;
// transcribing it reports that duration, in each response format.
func TestSpeechAndTranscription(t *testing.T) {
	srv := newServer(t)
	input := strings.Repeat("a", 50) // 50 characters: 3 seconds
	resp := post(t, srv, "/v1/audio/speech", `{"model":"demo","voice":"alloy","input":"`+input+`"}`)
	wav, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/wav" || string(wav[:4]) != "RIFF" {
		t.Fatalf("speech: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), wav[:min(12, len(wav))])
	}
	if ms := audioMillis(wav); ms != 3000 {
		t.Fatalf("speech lasts %d ms, want 3000", ms)
	}
	resp = post(t, srv, "/v1/audio/speech", `{"input":"`+input+`","response_format":"pcm"}`)
	pcm, _ := io.ReadAll(resp.Body)
	if len(pcm) != 2*speechRate*3 || resp.Header.Get("Content-Type") != "audio/pcm" {
		t.Fatalf("pcm: %d bytes, %s", len(pcm), resp.Header.Get("Content-Type"))
	}

	var got struct {
		Text     string
		Task     string
		Duration json.Number
		Usage    struct {
			Type    string
			Seconds json.Number
		}
	}
	decode(t, postForm(t, srv.URL+"/v1/audio/transcriptions", "file", wav, map[string]string{"model": "demo"}), &got)
	if got.Usage.Type != "duration" || got.Usage.Seconds != "3" || !strings.Contains(got.Text, "3 seconds") {
		t.Fatalf("transcription: %+v", got)
	}
	decode(t, postForm(t, srv.URL+"/v1/audio/translations", "file", wav,
		map[string]string{"model": "demo", "response_format": "verbose_json"}), &got)
	if got.Task != "translate" || got.Duration != "3" || got.Usage.Seconds != "3" {
		t.Fatalf("verbose translation: %+v", got)
	}
	// Not WAV: measured at 128 kbit/s, 16000 bytes a second.
	decode(t, postForm(t, srv.URL+"/v1/audio/transcriptions", "file", make([]byte, 24001), map[string]string{"model": "demo"}), &got)
	if got.Usage.Seconds != "1.501" {
		t.Fatalf("mp3-sized file: %+v", got)
	}
	for format, want := range map[string]string{"text": "demo upstream's transcript of 3 seconds", "srt": "00:00:03,000",
		"vtt": "WEBVTT"} {
		resp := postForm(t, srv.URL+"/v1/audio/transcriptions", "file", wav, map[string]string{"response_format": format})
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %q", format, resp.StatusCode, b)
		}
	}
	if resp := postForm(t, srv.URL+"/v1/audio/transcriptions", "", nil, map[string]string{"model": "demo"}); resp.StatusCode != 400 {
		t.Fatalf("no file: status %d, want 400", resp.StatusCode)
	}
}

func TestImages(t *testing.T) {
	srv := newServer(t)
	type answer struct {
		Data []struct {
			B64JSON string `json:"b64_json"`
			URL     string `json:"url"`
		}
		Usage struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
			TotalTokens  int `json:"total_tokens"`
		}
	}
	var got answer
	decode(t, post(t, srv, "/v1/images/generations", `{"model":"demo","prompt":"a red lighthouse","n":2,"size":"1024x1024"}`), &got)
	if len(got.Data) != 2 || got.Usage.InputTokens != 3 || got.Usage.OutputTokens != 2*outputTokensPerImage ||
		got.Usage.TotalTokens != 3+2*outputTokensPerImage {
		t.Fatalf("generations: %+v", got.Usage)
	}
	raw, err := base64.StdEncoding.DecodeString(got.Data[0].B64JSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	got = answer{}
	decode(t, postForm(t, srv.URL+"/v1/images/edits", "image", demoPNG, map[string]string{"prompt": "bluer", "response_format": "url"}), &got)
	if len(got.Data) != 1 || !strings.HasPrefix(got.Data[0].URL, "data:image/png;base64,") || got.Usage.InputTokens != 1 {
		t.Fatalf("edits: %+v", got)
	}
	got = answer{}
	decode(t, postForm(t, srv.URL+"/v1/images/variations", "image", demoPNG, map[string]string{"n": "3"}), &got)
	if len(got.Data) != 3 {
		t.Fatalf("variations: %d images", len(got.Data))
	}
	for path, body := range map[string]string{"/v1/images/generations": `{"prompt":"x","n":11}`} {
		if resp := post(t, srv, path, body); resp.StatusCode != 400 {
			t.Fatalf("%s %s: status %d, want 400", path, body, resp.StatusCode)
		}
	}
	if resp := post(t, srv, "/v1/images/generations", `{"n":1}`); resp.StatusCode != 400 {
		t.Fatalf("no prompt: status %d, want 400", resp.StatusCode)
	}
	if resp := postForm(t, srv.URL+"/v1/images/edits", "", nil, map[string]string{"prompt": "x"}); resp.StatusCode != 400 {
		t.Fatalf("edit without an image: status %d, want 400", resp.StatusCode)
	}
}

func TestPostOnly(t *testing.T) {
	srv := newServer(t)
	for path := range posts {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
}
