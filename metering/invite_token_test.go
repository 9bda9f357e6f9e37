package metering

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestInviteTokenFormat(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		token, digest, err := newInviteToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(token) != InviteTokenLen || !strings.HasPrefix(token, "tgi_") || !WellFormedInviteToken(token) || seen[token] {
			t.Fatalf("bad or repeated token %q", token)
		}
		seen[token] = true
		sum := sha256.Sum256([]byte(token))
		if digest != hex.EncodeToString(sum[:]) || strings.Contains(digest, token[4:]) {
			t.Fatalf("digest %q is not the token's SHA-256 in hex", digest)
		}
		if WellFormedKey(token) {
			t.Fatalf("token %q passes for an API key", token)
		}
		id, err := newInviteID()
		if err != nil || !wellFormedInviteID(id) {
			t.Fatalf("bad invite id %q (%v)", id, err)
		}
	}
	for _, bad := range []string{"", "tgi_", "tgi_" + strings.Repeat("a", 42), "tgi_" + strings.Repeat("a", 44),
		"tgx_" + strings.Repeat("a", 43), "tgi_" + strings.Repeat("a", 42) + "-", "tgi_" + strings.Repeat("a", 42) + "\x00"} {
		if WellFormedInviteToken(bad) {
			t.Fatalf("%q passes for a token", bad)
		}
	}
	for _, bad := range []string{"", strings.Repeat("0", 31), strings.Repeat("A", 32), strings.Repeat("g", 32)} {
		if wellFormedInviteID(bad) {
			t.Fatalf("%q passes for an invite id", bad)
		}
	}
}
