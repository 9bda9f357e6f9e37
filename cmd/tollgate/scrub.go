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
// a Tollgate API key there, before it reaches a terminal, a journal or a
// log collector. Logs Caddy writes to files itself are not seen here:
// filter them in the Caddyfile (`format filter`, see the README).

const (
	keyPrefix = "tg_"
	// keyChars is how many base62 characters follow the prefix.
	keyChars = metering.APIKeyLen - len(keyPrefix)
	// keepDisplay is how many of them stay visible: the key's display
	// prefix, which the admin API shows anyway, so a redacted line can
	// still be matched to a user.
	keepDisplay = 4
	redacted    = "[redacted]"
)

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// keyScrubber writes to w what is written to it, with every "tg_" followed
// by keyChars base62 characters replaced by "tg_" + the first four +
// "[redacted]". It holds back at
// most the last len("tg_")+keyChars-1 bytes, which could be the start of a
// key whose rest has not arrived yet; Close writes them.
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

// Close writes what was held back, redacting a key cut short too.
func (s *keyScrubber) Close() error {
	s.out = redactKeys(s.out[:0], s.pending, true)
	s.pending = s.pending[:0]
	_, err := s.w.Write(s.out)
	return err
}

// redactKeys appends b to dst with every key-shaped run redacted; at the
// end of the stream (final), a run cut short at the end of b is redacted
// whatever its length.
func redactKeys(dst, b []byte, final bool) []byte {
	for {
		i := bytes.Index(b, []byte(keyPrefix))
		if i < 0 {
			return append(dst, b...)
		}
		run := i + len(keyPrefix)
		for run < len(b) && isBase62(b[run]) {
			run++
		}
		n := run - i - len(keyPrefix)
		switch {
		case n >= keyChars:
			// The key itself; base62 after it is not key material.
			run = i + len(keyPrefix) + keyChars
			fallthrough
		case final && run == len(b) && n > 0:
			dst = append(dst, b[:i+len(keyPrefix)+min(n, keepDisplay)]...)
			dst = append(dst, redacted...)
		default:
			dst = append(dst, b[:run]...)
		}
		b = b[run:]
	}
}

// heldBack is how many bytes at the end of b could begin a key: "t", "tg",
// or "tg_" and fewer than keyChars base62 characters, reaching the end.
func heldBack(b []byte) int {
	for i := max(0, len(b)-len(keyPrefix)-keyChars+1); i < len(b); i++ {
		rest := b[i:]
		if len(rest) <= len(keyPrefix) {
			if bytes.HasPrefix([]byte(keyPrefix), rest) {
				return len(rest)
			}
			continue
		}
		if !bytes.HasPrefix(rest, []byte(keyPrefix)) {
			continue
		}
		if allBase62(rest[len(keyPrefix):]) {
			return len(rest)
		}
	}
	return 0
}

func allBase62(b []byte) bool {
	for _, c := range b {
		if !isBase62(c) {
			return false
		}
	}
	return true
}
