package caddymodule

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/audio"
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

// The input bound. Every tokenizer OpenAI uses (r50k, p50k, cl100k,
// o200k) is a byte-level BPE: its vocabulary holds all 256 single bytes
// and every token stands for at least one byte of text, so n bytes of
// UTF-8 encode into at most n tokens, whatever the script. Every text the
// model reads comes from the request body, where its JSON encoding is at
// least as long as the text (escapes only lengthen it), so the body's
// length in bytes bounds the text tokens of the whole request: messages,
// tool definitions, schemas, fields the gateway does not know. To that
// come the chat template's tokens (per request and per message) and
// images, which are billed by their size in pixels rather than their
// bytes: each image part counts image_tokens instead of its data, and so
// does each image generated (token-priced image models bill its tokens).
const (
	perMessageOverhead  = 4 // OpenAI's documented per-message framing is 3-4 tokens
	perRequestOverhead  = 3 // the reply's priming tokens
	defaultMaxOutput    = 4096
	defaultMinOutput    = 16
	defaultAudioSeconds = 600
	// defaultImageTokens: the largest per-image count OpenAI documents
	// (gpt-image-1, high quality, 1536×1024: 6,240 output tokens); images
	// read by tile- and patch-based vision models count fewer.
	defaultImageTokens = 6240
	// maxChoices bounds n and best_of (OpenAI allows at most 128).
	maxChoices = 128
)

// bytesPerToken is the usual English ratio, used only to charge the text of
// a stream cut short (no usage report), never to reserve.
const bytesPerToken = 4

// estimateConfig is the route's limits for what the request cannot say.
type estimateConfig struct {
	MaxOutputTokens int64 // when the request sets no output limit
	AudioSeconds    int64 // a transcription's reserved duration when it cannot be measured
	ImageTokens     int64 // the tokens of one image, read or generated
	// ChatLimitField is the field a chat request's output limit is set in
	// when the client sets none: "max_completion_tokens" or "max_tokens".
	ChatLimitField string
	// AudioDuration measures a transcription's audio (see audioDurationFunc);
	// nil: unknown, AudioSeconds is reserved.
	AudioDuration audioDurationFunc
}

// audioDurationFunc measures a transcription's uploaded file: its
// duration in whole milliseconds rounded up, or an error saying why it
// cannot be told (then the route's audio_seconds is reserved, and the
// settlement says so). What it answers is reserved as an upper bound, so
// it must not be less than what the upstream bills; measureAudio
// (metering/audio) is the gateway's.
type audioDurationFunc func(filename, contentType string, audio []byte) (millis int64, err error)

// measureAudio measures by the file's content, never its name or type.
func measureAudio(_, _ string, b []byte) (int64, error) {
	m, err := audio.Duration(b)
	return m.Millis, err
}

func (c estimateConfig) withDefaults() estimateConfig {
	if c.MaxOutputTokens <= 0 {
		c.MaxOutputTokens = defaultMaxOutput
	}
	if c.AudioSeconds <= 0 {
		c.AudioSeconds = defaultAudioSeconds
	}
	if c.ImageTokens <= 0 {
		c.ImageTokens = defaultImageTokens
	}
	if c.ChatLimitField == "" {
		c.ChatLimitField = "max_completion_tokens"
	}
	return c
}

// estimate is what the handler learned from a request body, and the body
// the upstream gets: the bytes received plus, where the gateway adds
// something (an output limit, include_usage), exactly those insertions.
type estimate struct {
	Kind  endpoint
	Model string
	Units metering.Units
	// Stream: the client asked for an SSE stream.
	Stream bool
	// ClientWantsUsage: the client itself set stream_options.include_usage,
	// so the usage chunk is the client's to see.
	ClientWantsUsage bool
	// AudioUnknown says why a transcription's duration could not be
	// measured, when Units.AudioMillis is the route's cap ("" measured).
	AudioUnknown string

	// Output: Units.OutputTokens is perChoice × choices.
	choices, perChoice int64
	// limitField is the output limit the gateway adds, set to perChoice,
	// because the client set none ("" when it did, or the endpoint has none).
	limitField string
	limitNull  jval // the client's explicit null for that field, replaced

	body        []byte // as received (JSON) or rebuilt (multipart)
	contentType string // a rebuilt multipart body's type; "" unchanged
	rootStart   int    // offset of the JSON object's '{'
	rootEmpty   bool
	rootAdd     []string // members added to the object
	edits       []edit
}

// edit replaces body[start:end] with text (an insertion when start == end).
type edit struct {
	start, end int
	text       string
}

// adjustable reports whether the output limit is the gateway's to choose
// (the client set none), so a smaller one can be reserved and sent.
func (e *estimate) adjustable() bool { return e.limitField != "" && e.perChoice > 0 }

// setPerChoice changes the output reserved and sent per choice.
func (e *estimate) setPerChoice(n int64) {
	e.perChoice = n
	e.Units.OutputTokens = n * e.choices
}

// upstreamBody is the body to send upstream, or nil when it is the one
// received, unchanged.
func (e *estimate) upstreamBody() []byte {
	if e.contentType != "" {
		return e.body
	}
	edits := e.edits
	add := e.rootAdd
	if e.limitField != "" {
		n := strconv.FormatInt(e.perChoice, 10)
		if e.limitNull.present() {
			edits = append(edits[:len(edits):len(edits)], edit{e.limitNull.start, e.limitNull.end, n})
		} else {
			add = append(add[:len(add):len(add)], strconv.Quote(e.limitField)+":"+n)
		}
	}
	if len(add) > 0 {
		text := strings.Join(add, ",")
		if !e.rootEmpty {
			text += ","
		}
		edits = append(edits[:len(edits):len(edits)], edit{e.rootStart + 1, e.rootStart + 1, text})
	}
	if len(edits) == 0 {
		return nil
	}
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	size := len(e.body)
	for _, ed := range edits {
		size += len(ed.text) - (ed.end - ed.start)
	}
	out := make([]byte, 0, size)
	at := 0
	for _, ed := range edits {
		out = append(out, e.body[at:ed.start]...)
		out = append(out, ed.text...)
		at = ed.end
	}
	return append(out, e.body[at:]...)
}

// estimateRequest reads what a request will use. body is the whole request
// body (already bounded by the caller); an empty body estimates nothing.
// Errors are *requestError or *syntaxError, answered 400.
func estimateRequest(kind endpoint, contentType string, body []byte, cfg estimateConfig) (*estimate, error) {
	cfg = cfg.withDefaults()
	est := &estimate{Kind: kind, body: body, choices: 1}
	if isMultipart(contentType) {
		if kind != epTranscription && kind != epImages {
			return nil, &requestError{code: "invalid_request", msg: "This endpoint takes a JSON body, not a multipart form."}
		}
		return est, est.readMultipart(contentType, cfg)
	}
	if kind == epTranscription {
		return nil, &requestError{code: "invalid_request", msg: "A transcription is a multipart/form-data upload."}
	}
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return est, nil
	}
	doc, err := parseStrictJSON(body)
	if err != nil {
		return nil, err
	}
	if doc.root.kind != jsonObject {
		return nil, &requestError{code: "invalid_json", msg: "The request body must be a JSON object."}
	}
	est.rootStart = doc.root.start
	est.rootEmpty = doc.b[doc.skipWS(doc.root.start+1)] == '}'
	r := reader{doc: doc, est: est, cfg: cfg}
	switch kind {
	case epChat:
		err = r.chat()
	case epCompletions:
		err = r.completions()
	case epEmbeddings:
		err = r.embeddings()
	case epResponses:
		err = r.responses()
	case epSpeech:
		err = r.speech()
	case epImages:
		err = r.images()
	default:
		err = r.generic()
	}
	if err != nil {
		return nil, err
	}
	return est, nil
}

// reader estimates one validated JSON body.
type reader struct {
	doc *jsonDoc
	est *estimate
	cfg estimateConfig
}

// bodyTokens is the input bound of the whole body, less the bytes of the
// image data it replaces by image_tokens (see imageParts).
func (r *reader) bodyTokens(imageBytes, images int64) int64 {
	return int64(len(r.doc.b)) - imageBytes + images*r.cfg.ImageTokens
}

// top reads the body's own fields: the model (validated, see model) and
// names, which it answers in order.
func (r *reader) top(names ...string) ([]jval, error) {
	f, err := r.doc.fields(r.doc.root, "", append([]string{"model"}, names...)...)
	if err != nil {
		return nil, err
	}
	if err := r.model(f[0]); err != nil {
		return nil, err
	}
	return f[1:], nil
}

func (r *reader) chat() error {
	f, err := r.top("messages", "max_completion_tokens", "max_tokens", "n", "stream", "stream_options")
	if err != nil {
		return err
	}
	msgs, err := r.array(f[0], "messages")
	if err != nil {
		return err
	}
	var imageBytes, images int64
	for i, m := range msgs {
		if m.kind != jsonObject {
			continue // the upstream refuses it; its bytes are counted anyway
		}
		path := "messages[" + strconv.Itoa(i) + "]"
		mf, err := r.doc.fields(m, path, "content")
		if err != nil {
			return err
		}
		b, n, err := r.imageParts(mf[0], path+".content", "image_url")
		if err != nil {
			return err
		}
		imageBytes, images = imageBytes+b, images+n
	}
	r.est.Units.InputTokens = perRequestOverhead + perMessageOverhead*int64(len(msgs)) + r.bodyTokens(imageBytes, images)
	if err := r.output(r.cfg.ChatLimitField, []string{"max_completion_tokens", "max_tokens"}, f[1:3], f[3], jval{}); err != nil {
		return err
	}
	return r.stream(f[4], f[5])
}

func (r *reader) completions() error {
	f, err := r.top("max_tokens", "n", "best_of", "stream", "stream_options")
	if err != nil {
		return err
	}
	r.est.Units.InputTokens = perRequestOverhead + r.bodyTokens(0, 0)
	if err := r.output("max_tokens", []string{"max_tokens"}, f[0:1], f[1], f[2]); err != nil {
		return err
	}
	return r.stream(f[3], f[4])
}

func (r *reader) embeddings() error {
	_, err := r.top()
	r.est.Units.InputTokens = r.bodyTokens(0, 0)
	return err
}

// responses reads the Responses API: input is a string or a list of items,
// whose content (and a tool output's parts) may hold input_image parts.
// Streams always end with the usage (response.completed), so nothing is
// added for them.
func (r *reader) responses() error {
	f, err := r.top("input", "max_output_tokens")
	if err != nil {
		return err
	}
	items := int64(1)
	var imageBytes, images int64
	if f[0].kind == jsonArray {
		list := r.doc.elements(f[0])
		items = int64(len(list))
		for i, it := range list {
			if it.kind != jsonObject {
				continue
			}
			path := "input[" + strconv.Itoa(i) + "]"
			itf, err := r.doc.fields(it, path, "content", "output")
			if err != nil {
				return err
			}
			for j, name := range []string{"content", "output"} {
				b, n, err := r.imageParts(itf[j], path+"."+name, "image_url")
				if err != nil {
					return err
				}
				imageBytes, images = imageBytes+b, images+n
			}
		}
	}
	r.est.Units.InputTokens = perRequestOverhead + perMessageOverhead*items + r.bodyTokens(imageBytes, images)
	return r.output("max_output_tokens", []string{"max_output_tokens"}, f[1:2], jval{}, jval{})
}

// speech is priced per character of input (and, for token-priced voices,
// per input token): both are known before the call.
func (r *reader) speech() error {
	f, err := r.top("input")
	if err != nil {
		return err
	}
	if f[0].present() && f[0].kind != jsonString {
		return badField("input", "The input must be a string.")
	}
	if f[0].present() {
		r.est.Units.Characters = int64(utf8.RuneCountInString(r.doc.str(f[0])))
	}
	r.est.Units.InputTokens = r.bodyTokens(0, 0)
	return nil
}

func (r *reader) images() error {
	f, err := r.top("n")
	if err != nil {
		return err
	}
	n, err := r.count(f[0], "n")
	if err != nil {
		return err
	}
	r.est.Units.Images, r.est.Units.OutputTokens = n, n*r.cfg.ImageTokens
	r.est.Units.InputTokens = r.bodyTokens(0, 0)
	return nil
}

// generic is a JSON call the gateway does not know: the whole body as
// input and the client's limit or the route's cap as output; no limit is
// added, since the gateway cannot know the endpoint's field.
func (r *reader) generic() error {
	f, err := r.top("max_completion_tokens", "max_tokens", "max_output_tokens", "n")
	if err != nil {
		return err
	}
	r.est.Units.InputTokens = r.bodyTokens(0, 0)
	return r.output("", []string{"max_completion_tokens", "max_tokens", "max_output_tokens"}, f[0:3], f[3], jval{})
}

// model reads the model name: absent or null is "" (the route's
// unknown_model policy applies); anything else must be a name a price can
// have, so nothing unvalidated is recorded.
func (r *reader) model(v jval) error {
	if !v.present() || v.kind == jsonNull {
		return nil
	}
	if v.kind != jsonString {
		return badField("model", "The model must be a string.")
	}
	return r.est.setModel(r.doc.str(v))
}

func (e *estimate) setModel(m string) error {
	if !metering.ValidModel(m) {
		return &requestError{param: "model", code: "invalid_model",
			msg: "The model is not a valid model name (letters, digits and . _ : / -, at most 128 characters)."}
	}
	e.Model = m
	return nil
}

func (r *reader) array(v jval, path string) ([]jval, error) {
	switch {
	case !v.present() || v.kind == jsonNull:
		return nil, nil
	case v.kind != jsonArray:
		return nil, badField(path, "The "+path+" must be an array.")
	}
	return r.doc.elements(v), nil
}

// imageParts finds the image parts of a content list: parts whose type is
// image_url (chat) or input_image (Responses). It answers the bytes of
// their data (field dataField), which image_tokens replace, and their count.
func (r *reader) imageParts(content jval, path, dataField string) (dataBytes, images int64, err error) {
	if content.kind != jsonArray {
		return 0, 0, nil // a string, null or absent: text, counted by its bytes
	}
	for i, p := range r.doc.elements(content) {
		if p.kind != jsonObject {
			continue
		}
		pf, err := r.doc.fields(p, path+"["+strconv.Itoa(i)+"]", "type", dataField)
		if err != nil {
			return 0, 0, err
		}
		if pf[0].kind != jsonString {
			continue
		}
		if t := r.doc.str(pf[0]); t == "image_url" || t == "input_image" {
			images++
			if pf[1].present() {
				dataBytes += int64(pf[1].end - pf[1].start)
			}
		}
	}
	return dataBytes, images, nil
}

// output reads the client's output limits (names[i] is limits[i]; the
// largest counts) and the number of choices (n, and best_of where it
// exists: the larger). With no limit, the route's cap is reserved and the
// field add (if any) is set to it upstream, replacing an explicit null.
func (r *reader) output(add string, names []string, limits []jval, n, bestOf jval) error {
	var limit int64
	var addNull jval
	for i, v := range limits {
		switch {
		case !v.present():
		case v.kind == jsonNull:
			if names[i] == add {
				addNull = v
			}
		default:
			l, ok := r.doc.uint(v, maxTokensValue)
			if !ok || l == 0 {
				return badField(names[i], "The "+names[i]+" must be a positive integer (at most "+strconv.FormatInt(maxTokensValue, 10)+").")
			}
			limit = max(limit, l)
		}
	}
	choices, err := r.count(n, "n")
	if err != nil {
		return err
	}
	if bestOf.present() {
		b, err := r.count(bestOf, "best_of")
		if err != nil {
			return err
		}
		choices = max(choices, b)
	}
	r.est.choices = choices
	if limit == 0 {
		limit = r.cfg.MaxOutputTokens
		r.est.limitField, r.est.limitNull = add, addNull
	}
	r.est.setPerChoice(limit)
	return nil
}

// count reads n or best_of: absent or null is 1, else 1..maxChoices.
func (r *reader) count(v jval, name string) (int64, error) {
	if !v.present() || v.kind == jsonNull {
		return 1, nil
	}
	n, ok := r.doc.uint(v, maxChoices)
	if !ok || n == 0 {
		return 0, badField(name, "The "+name+" must be an integer from 1 to "+strconv.Itoa(maxChoices)+".")
	}
	return n, nil
}

// stream reads stream and stream_options. For a stream the gateway needs
// the usage chunk: when the client did not ask for it, include_usage is
// set upstream and the capture drops the chunk again.
func (r *reader) stream(stream, opts jval) error {
	on, err := r.bool(stream, "stream")
	if err != nil || !on {
		return err
	}
	e := r.est
	e.Stream = true
	const usageOn = `{"include_usage":true}`
	switch {
	case !opts.present():
		e.rootAdd = append(e.rootAdd, `"stream_options":`+usageOn)
		return nil
	case opts.kind == jsonNull:
		e.edits = append(e.edits, edit{opts.start, opts.end, usageOn})
		return nil
	case opts.kind != jsonObject:
		return badField("stream_options", "The stream_options must be an object.")
	}
	of, err := r.doc.fields(opts, "stream_options", "include_usage")
	if err != nil {
		return err
	}
	iu := of[0]
	want, err := r.bool(iu, "stream_options.include_usage")
	switch {
	case err != nil:
		return err
	case want:
		e.ClientWantsUsage = true
	case iu.present(): // false or null
		e.edits = append(e.edits, edit{iu.start, iu.end, "true"})
	default:
		text := `"include_usage":true`
		if r.doc.b[r.doc.skipWS(opts.start+1)] != '}' {
			text += ","
		}
		e.edits = append(e.edits, edit{opts.start + 1, opts.start + 1, text})
	}
	return nil
}

// bool reads a boolean: absent or null is false; anything else is refused
// (a parser that reads "true" as true would stream what the gateway did
// not expect).
func (r *reader) bool(v jval, name string) (bool, error) {
	switch {
	case !v.present() || v.kind == jsonNull:
		return false, nil
	case v.kind != jsonBool:
		return false, badField(name, "The "+name+" must be true or false.")
	}
	return r.doc.b[v.start] == 't', nil
}

// maxTokensValue bounds any token count read from a request, so an
// estimate times a price cannot overflow (Price.Cost saturates anyway).
const maxTokensValue = 1 << 40
