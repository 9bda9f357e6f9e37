package main

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Images: generations (JSON), edits and variations (multipart). Every
// image is the same small PNG whatever the size asked for, and the usage
// is reported as OpenAI does for gpt-image-1: input tokens (here the
// prompt's words) and output tokens per image (272, what a low-quality
// square image costs there).

const (
	outputTokensPerImage = 272
	maxImages            = 10 // OpenAI's limit of n
	demoImageSide        = 32
)

// demoPNG is the one picture the demo draws: a small gradient.
var demoPNG = func() []byte {
	img := image.NewRGBA(image.Rect(0, 0, demoImageSide, demoImageSide))
	for y := 0; y < demoImageSide; y++ {
		for x := 0; x < demoImageSide; x++ {
			img.Set(x, y, color.RGBA{R: uint8(8 * x), G: uint8(8 * y), B: 160, A: 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}()

type imageRequest struct {
	Model          string `json:"model"`
	Prompt         string `json:"prompt"`
	N              int    `json:"n"`
	ResponseFormat string `json:"response_format"`
}

type imageUsage struct {
	TotalTokens        int            `json:"total_tokens"`
	InputTokens        int            `json:"input_tokens"`
	OutputTokens       int            `json:"output_tokens"`
	InputTokensDetails map[string]int `json:"input_tokens_details"`
}

func (h *handler) images(w http.ResponseWriter, r *http.Request) {
	var req imageRequest
	if strings.HasSuffix(r.URL.Path, "/generations") {
		if !readJSON(w, r, &req) {
			return
		}
	} else {
		// Edits and variations upload the image(s) as a form.
		r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
		if err := r.ParseMultipartForm(maxUpload); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "a multipart form with an image is required: "+err.Error())
			return
		}
		if len(r.MultipartForm.File) == 0 {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "image is required")
			return
		}
		req.Model, req.Prompt, req.ResponseFormat = r.FormValue("model"), r.FormValue("prompt"), r.FormValue("response_format")
		if n := r.FormValue("n"); n != "" {
			v, err := strconv.Atoi(n)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid_request_error", "n must be an integer")
				return
			}
			req.N = v
		}
	}
	if req.N == 0 {
		req.N = 1
	}
	if req.N < 1 || req.N > maxImages {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "n must be between 1 and 10")
		return
	}
	if req.Prompt == "" && !strings.HasSuffix(r.URL.Path, "/variations") {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "prompt must not be empty")
		return
	}
	encoded := base64.StdEncoding.EncodeToString(demoPNG)
	data := make([]map[string]string, req.N)
	for i := range data {
		if req.ResponseFormat == "url" {
			data[i] = map[string]string{"url": "data:image/png;base64," + encoded}
		} else {
			data[i] = map[string]string{"b64_json": encoded}
		}
	}
	in := len(strings.Fields(req.Prompt))
	out := outputTokensPerImage * req.N
	writeJSON(w, http.StatusOK, map[string]any{"created": time.Now().Unix(), "data": data,
		"usage": imageUsage{TotalTokens: in + out, InputTokens: in, OutputTokens: out,
			InputTokensDetails: map[string]int{"text_tokens": in, "image_tokens": 0}}})
}
