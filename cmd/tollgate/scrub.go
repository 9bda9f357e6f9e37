package main

import (
	"bytes"
	"io"

	"github.com/tollgate/tollgate/metering"
)

// Caddy copies request headers into its logs before any handler runs: the
// error logger (on by default) and access logs (the `log` directive) print
// X-Api-Key in full, and Authorization too with `log_credentials`. A
// handler cannot change what Caddy already cloned, so `tollgate run`
// passes everything it writes to standard output and standard error
// through keyScrubber (see scrub_unix.go) and redacts anything shaped like
// a Tollgate API key or invite token there, before it reaches a terminal,
// a journal or a log collector. Invite tokens travel in URL paths
// (/claim/<token>), which access logs print. Logs Caddy writes to files
// itself are not seen here: filter them in the Caddyfile (`format filter`,
// see the README).

// secretShape is a kind of secret the scrubber redacts: a prefix followed
// by exactly chars base62 characters, of which the first keep stay visible.
type secretShape struct {
	prefix string
	chars  int
	keep   int
}

var (
	// apiKeyShape keeps the key's display prefix, which the admin API
	// shows anyway, so a redacted line can still be matched to a user.
	apiKeyShape = secretShape{prefix: "tg_", chars: metering.APIKeyLen - len("tg_"), keep: 4}
	// inviteShape keeps nothing: no part of a token is shown anywhere.
	inviteShape = secretShape{prefix: metering.InviteTokenPrefix,
		chars: metering.InviteTokenLen - len(metering.InviteTokenPrefix), keep: 0}
	// secretShapes are checked in this order at each position; no prefix
	// is a prefix of another ("tg_" and "tgi_" part at their third byte).
	secretShapes = []secretShape{apiKeyShape, inviteShape}
	// maxHeldBack is the longest start of a secret that can end a write.
	maxHeldBack = max(len(apiKeyShape.prefix)+apiKeyShape.chars, len(inviteShape.prefix)+inviteShape.chars) - 1
)

const redacted = "[redacted]"

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// keyScrubber writes to w what is written to it, with every secret of a
// secretShape (an API key: "tg_" and its base62 characters; an invite
// token: "tgi_" and its) replaced by its prefix, the characters it keeps
// and "[redacted]". It holds back at most maxHeldBack bytes, which could
// be the start of a secret whose rest has not arrived yet; Close writes
// them.
type keyScrubber struct {
	w       io.Writer
	pending []byte
	out     []byte
}

func (s *keyScrubber) Write(p []byte) (int, error) {
	s.pending = append(s.pending, p...)
	s.out = redactKeys(s.out[:0], s.pending, false)
	cut := len(s.out) - heldBack(s.out)
	if _, err := s.w.Write(s.out[:cut]); err != nil {
		return 0, err
	}
	s.pending = append(s.pending[:0], s.out[cut:]...)
	return len(p), nil
}

// Close writes what was held back, redacting a secret cut short too.
func (s *keyScrubber) Close() error {
	s.out = redactKeys(s.out[:0], s.pending, true)
	s.pending = s.pending[:0]
	_, err := s.w.Write(s.out)
	return err
}

// nextSecret finds the first secret prefix in b: its index and shape, or -1.
func nextSecret(b []byte) (int, secretShape) {
	at, shape := -1, secretShape{}
	for _, sh := range secretShapes {
		if i := bytes.Index(b, []byte(sh.prefix)); i >= 0 && (at < 0 || i < at) {
			at, shape = i, sh
		}
	}
	return at, shape
}

// redactKeys appends b to dst with every secret-shaped run redacted; at
// the end of the stream (final), a run cut short at the end of b is
// redacted whatever its length.
func redactKeys(dst, b []byte, final bool) []byte {
	for {
		i, sh := nextSecret(b)
		if i < 0 {
			return append(dst, b...)
		}
		body := i + len(sh.prefix)
		run := body
		for run < len(b) && isBase62(b[run]) {
			run++
		}
		n := run - body
		switch {
		case n >= sh.chars:
			// The secret itself; base62 after it is not secret material.
			run = body + sh.chars
			fallthrough
		case final && run == len(b) && n > 0:
			dst = append(dst, b[:body+min(n, sh.keep)]...)
			dst = append(dst, redacted...)
		default:
			dst = append(dst, b[:run]...)
		}
		b = b[run:]
	}
}

// heldBack is how many bytes at the end of b could begin a secret: part
// of a prefix, or a whole prefix and fewer base62 characters than the
// secret has, reaching the end.
func heldBack(b []byte) int {
	for i := max(0, len(b)-maxHeldBack); i < len(b); i++ {
		rest := b[i:]
		for _, sh := range secretShapes {
			if couldStart(rest, sh) {
				return len(rest)
			}
		}
	}
	return 0
}

// couldStart reports whether rest, the end of the output so far, could be
// the start of a secret of shape sh.
func couldStart(rest []byte, sh secretShape) bool {
	if len(rest) <= len(sh.prefix) {
		return bytes.HasPrefix([]byte(sh.prefix), rest)
	}
	return len(rest) < len(sh.prefix)+sh.chars && bytes.HasPrefix(rest, []byte(sh.prefix)) &&
		allBase62(rest[len(sh.prefix):])
}

func allBase62(b []byte) bool {
	for _, c := range b {
		if !isBase62(c) {
			return false
		}
	}
	return true
}
