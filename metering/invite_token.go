package metering

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
)

// Invite tokens look like "tgi_" + 43 base62 characters: 256 bits of
// randomness, safe in a URL path as they are. The prefix lets the log
// scrubber (cmd/tollgate/scrub.go) find and redact them, as it does keys.
const (
	InviteTokenPrefix = "tgi_"
	inviteTokenBody   = 43
	InviteTokenLen    = len(InviteTokenPrefix) + inviteTokenBody
)

// newInviteToken returns a fresh token and the digest stored for it.
func newInviteToken() (token, digest string, err error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", err
	}
	token = InviteTokenPrefix + encodeBase62(new(big.Int).SetBytes(raw[:]), inviteTokenBody)
	return token, inviteDigest(token), nil
}

// inviteDigest is what Postgres stores for a token: its SHA-256 in hex. A
// plain hash, not a peppered HMAC like keys: the token carries 256 random
// bits, so there is nothing to guess from the digest.
func inviteDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// WellFormedInviteToken reports whether s has the shape of an invite token.
func WellFormedInviteToken(s string) bool {
	if len(s) != InviteTokenLen || s[:len(InviteTokenPrefix)] != InviteTokenPrefix {
		return false
	}
	for i := len(InviteTokenPrefix); i < len(s); i++ {
		if base62Value[s[i]] < 0 {
			return false
		}
	}
	return true
}

// newInviteID returns an invite's public id: 16 random bytes in hex. It
// names the invite in listings and the audit log and grants nothing.
func newInviteID() (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(raw[:]), nil
}

// wellFormedInviteID reports whether s has the shape newInviteID gives:
// 32 lower-case hex digits, as ids are stored and compared.
func wellFormedInviteID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
