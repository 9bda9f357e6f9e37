package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
)

// Embeddings: one made-up but stable vector per input, and the usage as
// OpenAI reports it (prompt tokens; here words, or the tokens given).

// defaultDimensions keeps the demo's answers short on a terminal; a
// request's "dimensions" asks for more, up to maxDimensions.
const (
	defaultDimensions = 8
	maxDimensions     = 3072
	maxInputs         = 2048 // OpenAI's limit of inputs per request
)

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     int             `json:"dimensions"`
}

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or base64 of little-endian float32s
}

type embeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

type embeddingList struct {
	Object string         `json:"object"`
	Data   []embedding    `json:"data"`
	Model  string         `json:"model"`
	Usage  embeddingUsage `json:"usage"`
}

func (h *handler) embeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingRequest
	if !readJSON(w, r, &req) {
		return
	}
	inputs, tokens, ok := embeddingInputs(req.Input)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			"input must be a string, an array of strings, or an array (of arrays) of token ids, 1 to 2048 of them")
		return
	}
	dims := defaultDimensions
	if req.Dimensions > 0 {
		dims = min(req.Dimensions, maxDimensions)
	}
	list := embeddingList{Object: "list", Model: modelOr(req.Model), Data: make([]embedding, len(inputs)),
		Usage: embeddingUsage{PromptTokens: tokens, TotalTokens: tokens}}
	for i, in := range inputs {
		v := vectorFor(in, dims)
		var e any = v
		if req.EncodingFormat == "base64" {
			// What OpenAI's Python and Node SDKs ask for by default.
			b := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			e = base64.StdEncoding.EncodeToString(b)
		}
		list.Data[i] = embedding{Object: "embedding", Index: i, Embedding: e}
	}
	writeJSON(w, http.StatusOK, list)
}

// embeddingInputs reads "input" in each of its forms: the texts (token
// arrays as their JSON) and their token count.
func embeddingInputs(raw json.RawMessage) (inputs []string, tokens int, ok bool) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, len(strings.Fields(one)), true
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil && len(texts) > 0 && len(texts) <= maxInputs {
		for _, t := range texts {
			tokens += len(strings.Fields(t))
		}
		return texts, tokens, true
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return []string{string(raw)}, len(ids), true
	}
	var lists [][]int
	if json.Unmarshal(raw, &lists) == nil && len(lists) > 0 && len(lists) <= maxInputs {
		for _, l := range lists {
			b, _ := json.Marshal(l)
			inputs = append(inputs, string(b))
			tokens += len(l)
		}
		return inputs, tokens, true
	}
	return nil, 0, false
}

// vectorFor is a unit vector drawn from the text's hash: the same text
// always gets the same vector.
func vectorFor(text string, dims int) []float32 {
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		h := fnv.New64a()
		_, _ = h.Write([]byte(text))
		_ = binary.Write(h, binary.LittleEndian, uint32(i))
		x := float64(h.Sum64()>>11)/float64(1<<53)*2 - 1
		v[i] = float32(x)
		norm += x * x
	}
	if norm > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / math.Sqrt(norm))
		}
	}
	return v
}
