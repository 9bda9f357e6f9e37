package caddymodule

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A strict JSON reader for request bodies. Upstreams read JSON in
// different ways: Go's encoding/json matches keys case-insensitively
// (with Unicode folding: "ſ" matches "s") and keeps the last of duplicate
// keys, other parsers keep the first, some skip a byte-order mark or
// accept trailing data, and C parsers stop at a NUL. The gateway estimates
// a request from the bytes the upstream receives, so it accepts only
// documents every parser reads alike:
//
//   - RFC 8259 syntax, valid UTF-8, nothing but whitespace after the value
//     (so no BOM, no second document), nesting at most maxJSONDepth;
//   - no object with two keys that are equal once unescaped ("model" and
//     "mod\u0065l" are the same key), at any depth;
//   - no key containing a control character or an unpaired surrogate.
//
// Case variants are refused where the estimator reads a field
// (jsonDoc.fields), not everywhere: a tool's JSON schema may well name
// both "id" and "ID".
//
// Parsing records nothing but spans; values are read on demand by
// re-scanning, so memory stays a small multiple of the key count of the
// largest object, whatever the body.

// maxJSONDepth bounds nesting (encoding/json allows 10000; requests need
// a few dozen levels at most).
const maxJSONDepth = 512

type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

// jval is one value of a validated document: its kind and its bytes
// body[start:end]. The zero jval with end 0 means "absent".
type jval struct {
	kind       jsonKind
	start, end int
}

func (v jval) present() bool { return v.end > 0 }

// jsonDoc is a validated document.
type jsonDoc struct {
	b    []byte
	root jval
}

// syntaxError is a document the gateway refuses; msg says why.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// parseStrictJSON validates b as described above.
func parseStrictJSON(b []byte) (*jsonDoc, error) {
	if !utf8.Valid(b) {
		return nil, &syntaxError{"the body is not valid UTF-8"}
	}
	p := &strictParser{b: b}
	p.ws()
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(b) {
		return nil, p.fail("data after the JSON value")
	}
	return &jsonDoc{b: b, root: root}, nil
}

type strictParser struct {
	b []byte
	i int
	// keys is a stack of the keys of the objects being parsed (their
	// spans in b, or decoded text for keys with escapes).
	keys []keySpan
}

type keySpan struct {
	start, end int
	decoded    string // set when the key has escapes
	escaped    bool
}

func (p *strictParser) fail(msg string) error {
	return &syntaxError{msg + " at byte " + strconv.Itoa(p.i)}
}

func (p *strictParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *strictParser) value(depth int) (jval, error) {
	if p.i >= len(p.b) {
		return jval{}, p.fail("unexpected end of JSON")
	}
	start := p.i
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return jval{}, p.fail("JSON nested too deeply")
		}
		kind, parse := jsonObject, p.object
		if c == '[' {
			kind, parse = jsonArray, p.array
		}
		if err := parse(depth); err != nil {
			return jval{}, err
		}
		return jval{kind, start, p.i}, nil
	case c == '"':
		if _, err := p.str(false); err != nil {
			return jval{}, err
		}
		return jval{jsonString, start, p.i}, nil
	case c == 't':
		return p.literal("true", jsonBool)
	case c == 'f':
		return p.literal("false", jsonBool)
	case c == 'n':
		return p.literal("null", jsonNull)
	case c == '-' || (c >= '0' && c <= '9'):
		if err := p.number(); err != nil {
			return jval{}, err
		}
		return jval{jsonNumber, start, p.i}, nil
	}
	return jval{}, p.fail("invalid character " + strconv.QuoteRune(rune(p.b[p.i])))
}

func (p *strictParser) literal(word string, kind jsonKind) (jval, error) {
	start := p.i
	if !bytes.HasPrefix(p.b[p.i:], []byte(word)) {
		return jval{}, p.fail("invalid literal")
	}
	p.i += len(word)
	return jval{kind, start, p.i}, nil
}

func (p *strictParser) object(depth int) error {
	p.i++ // {
	mark := len(p.keys)
	defer func() { p.keys = p.keys[:mark] }()
	var big map[string]struct{} // for objects with many keys
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.fail("expected a string key")
		}
		k, err := p.str(true)
		if err != nil {
			return err
		}
		kb := p.keyBytes(k)
		switch n := len(p.keys) - mark; {
		case big != nil:
			if _, dup := big[string(kb)]; dup {
				return p.dupKey(kb)
			}
			big[string(kb)] = struct{}{}
		default:
			for _, o := range p.keys[mark:] {
				if bytes.Equal(p.keyBytes(o), kb) {
					return p.dupKey(kb)
				}
			}
			if n >= 16 {
				big = make(map[string]struct{}, 2*n)
				for _, o := range p.keys[mark:] {
					big[string(p.keyBytes(o))] = struct{}{}
				}
				big[string(kb)] = struct{}{}
			}
		}
		p.keys = append(p.keys, k)
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail("expected ':' after a key")
		}
		p.i++
		p.ws()
		if _, err := p.value(depth + 1); err != nil {
			return err
		}
		if done, err := p.next('}', "an object"); done || err != nil {
			return err
		}
	}
}

// next reads what follows a member or an element: ',' (more follow) or
// the closing byte (done).
func (p *strictParser) next(closing byte, in string) (done bool, err error) {
	p.ws()
	if p.i >= len(p.b) {
		return false, p.fail("unexpected end of JSON in " + in)
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, nil
	case closing:
		p.i++
		return true, nil
	}
	return false, p.fail("expected ',' or '" + string(closing) + "' in " + in)
}

func (p *strictParser) dupKey(k []byte) error {
	return &syntaxError{"duplicate key " + strconv.Quote(string(k)) + " in a JSON object"}
}

func (p *strictParser) keyBytes(k keySpan) []byte {
	if k.escaped {
		return []byte(k.decoded)
	}
	return p.b[k.start:k.end]
}

func (p *strictParser) array(depth int) error {
	p.i++ // [
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		p.ws()
		if _, err := p.value(depth + 1); err != nil {
			return err
		}
		if done, err := p.next(']', "an array"); done || err != nil {
			return err
		}
	}
}

// str scans a string starting at its quote. For a key it also decodes
// escapes and refuses control characters and unpaired surrogates.
func (p *strictParser) str(key bool) (keySpan, error) {
	p.i++ // "
	k := keySpan{start: p.i}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			k.end = p.i
			p.i++
			if k.escaped {
				d, ok := unescapeJSON(p.b[k.start:k.end], true)
				if !ok {
					return k, p.fail("a key with an unpaired surrogate escape")
				}
				k.decoded = d
			}
			if key && hasControl(p.keyBytes(k)) {
				return k, p.fail("a key with a control character")
			}
			return k, nil
		case c < 0x20:
			return k, p.fail("a control character in a string")
		case c == '\\':
			k.escaped = true
			if p.i+1 >= len(p.b) {
				return k, p.fail("unexpected end of JSON in a string")
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) || !isHex4(p.b[p.i+2:p.i+6]) {
					return k, p.fail("an invalid \\u escape")
				}
				p.i += 6
			default:
				return k, p.fail("an invalid escape")
			}
		default:
			p.i++
		}
	}
	return k, p.fail("unexpected end of JSON in a string")
}

func (p *strictParser) number() error {
	b, i := p.b, p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		p.i = i
		return p.fail("an invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			p.i = i
			return p.fail("an invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			p.i = i
			return p.fail("an invalid number")
		}
	}
	p.i = i
	return nil
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hasControl(b []byte) bool {
	for _, r := range string(b) {
		if isControlRune(r) {
			return true
		}
	}
	return false
}

func isControlRune(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

// unescapeJSON decodes the inside of a valid JSON string. An unpaired
// surrogate escape (which parsers decode differently) makes ok false when
// strict, else it becomes U+FFFD as encoding/json decodes it.
func unescapeJSON(s []byte, strict bool) (string, bool) {
	var out strings.Builder
	out.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			out.WriteByte('\b')
		case 'f':
			out.WriteByte('\f')
		case 'n':
			out.WriteByte('\n')
		case 'r':
			out.WriteByte('\r')
		case 't':
			out.WriteByte('\t')
		case 'u':
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				pair := utf8.RuneError
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					pair = utf16.DecodeRune(r, hex4(s[i+2:i+6]))
				}
				if pair == utf8.RuneError {
					if strict {
						return "", false
					}
				} else {
					i += 6
				}
				r = pair
			}
			out.WriteRune(r)
			continue
		default: // " \ /
			out.WriteByte(s[i+1])
		}
		i += 2
	}
	return out.String(), true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// Reading a validated document. The scanners below trust the syntax.

// skip returns the end of the value starting at i (no leading space).
func (d *jsonDoc) skip(i int) int {
	b := d.b
	switch b[i] {
	case '"':
		i++
		for b[i] != '"' {
			if b[i] == '\\' {
				i++
			}
			i++
		}
		return i + 1
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = d.skip(i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // literal or number
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

func (d *jsonDoc) valueAt(i int) jval {
	end := d.skip(i)
	kind := jsonNumber
	switch d.b[i] {
	case '{':
		kind = jsonObject
	case '[':
		kind = jsonArray
	case '"':
		kind = jsonString
	case 't', 'f':
		kind = jsonBool
	case 'n':
		kind = jsonNull
	}
	return jval{kind, i, end}
}

func (d *jsonDoc) skipWS(i int) int {
	for {
		switch d.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
}

// jmember is one member of an object: its decoded key and its value.
type jmember struct {
	key string
	val jval
}

// members lists an object's members in order.
func (d *jsonDoc) members(v jval) []jmember {
	// Sized for a request's top level (model, messages, max_tokens,
	// stream, …) and a usage object, so they take one allocation, not one
	// per doubling.
	out := make([]jmember, 0, 8)
	i := d.skipWS(v.start + 1)
	for d.b[i] != '}' {
		end := d.skip(i)
		key := d.b[i+1 : end-1]
		k := string(key)
		if bytes.IndexByte(key, '\\') >= 0 {
			k, _ = unescapeJSON(key, false)
		}
		i = d.skipWS(end)
		i = d.skipWS(i + 1) // ':'
		val := d.valueAt(i)
		out = append(out, jmember{k, val})
		i = d.skipWS(val.end)
		if d.b[i] == ',' {
			i = d.skipWS(i + 1)
		}
	}
	return out
}

// elements lists an array's values in order.
func (d *jsonDoc) elements(v jval) []jval {
	var out []jval
	i := d.skipWS(v.start + 1)
	for d.b[i] != ']' {
		val := d.valueAt(i)
		out = append(out, val)
		i = d.skipWS(val.end)
		if d.b[i] == ',' {
			i = d.skipWS(i + 1)
		}
	}
	return out
}

// fields reads the named members of an object. A key that is a case
// variant of a name (under Unicode simple folding, as encoding/json
// matches keys) is refused: an upstream might read it as the field.
// Absent names give the zero jval.
func (d *jsonDoc) fields(v jval, path string, names ...string) ([]jval, error) {
	out := make([]jval, len(names))
	for _, m := range d.members(v) {
		for i, n := range names {
			switch {
			case m.key == n:
				out[i] = m.val
			case strings.EqualFold(m.key, n):
				return nil, &requestError{param: joinPath(path, n), code: "ambiguous_field",
					msg: "The key " + strconv.Quote(m.key) + " differs from " + strconv.Quote(n) + " only in case; send the field once, spelled exactly."}
			}
		}
	}
	return out, nil
}

// str is a string value, decoded.
func (d *jsonDoc) str(v jval) string {
	raw := d.b[v.start+1 : v.end-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	s, _ := unescapeJSON(raw, false)
	return s
}

// uint reads a plain non-negative integer literal (no sign, fraction or
// exponent) no larger than max; ok is false for anything else.
func (d *jsonDoc) uint(v jval, max int64) (int64, bool) {
	if v.kind != jsonNumber {
		return 0, false
	}
	n, err := strconv.ParseInt(string(d.b[v.start:v.end]), 10, 64)
	if err != nil || n < 0 || n > max || d.b[v.start] == '-' {
		return 0, false
	}
	return n, true
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
