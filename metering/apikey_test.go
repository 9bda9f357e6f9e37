package metering

import (
	"strings"
	"testing"
)

func TestAPIKeyFormat(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		k, err := NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != APIKeyLen || !strings.HasPrefix(k, "tg_") || !WellFormedKey(k) || seen[k] {
			t.Fatalf("bad or repeated key %q", k)
		}
		seen[k] = true
		// Any single-character change must break the checksum or the alphabet.
		b := []byte(k)
		pos := 3 + i%(APIKeyLen-3)
		b[pos] = base62[(strings.IndexByte(base62, b[pos])+1)%62]
		if WellFormedKey(string(b)) {
			t.Fatalf("mutated key %q still well formed", b)
		}
	}
	for _, s := range []string{"", "tg_", "sk-abc", strings.Repeat("x", APIKeyLen)} {
		if WellFormedKey(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

// AllocsPerRun cannot run in parallel tests.
func TestWellFormedKeyDoesNotAllocate(t *testing.T) {
	k, _ := NewAPIKey()
	if n := testing.AllocsPerRun(100, func() { WellFormedKey(k) }); n > 0 {
		t.Errorf("WellFormedKey allocates %v times", n)
	}
}

func TestKeyHasherAndSealer(t *testing.T) {
	t.Parallel()
	h1, _ := NewKeyHasher([]byte("pepper-1"))
	h2, _ := NewKeyHasher([]byte("pepper-2"))
	k, _ := NewAPIKey()
	if h1.Hash(k) != h1.Hash(k) || h1.Hash(k) == h2.Hash(k) {
		t.Fatal("hash must be deterministic and depend on the pepper")
	}
	if _, err := NewKeyHasher(nil); err == nil {
		t.Fatal("empty pepper accepted")
	}
	s, err := NewKeySealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal(k, h1.Hash(k))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), k) {
		t.Fatal("key visible in ciphertext")
	}
	got, err := s.Open(sealed, h1.Hash(k))
	if err != nil || got != k {
		t.Fatalf("open gave %q, %v", got, err)
	}
	if _, err := s.Open(sealed, h2.Hash(k)); err == nil {
		t.Fatal("ciphertext opened under another key hash")
	}
	if _, err := NewKeySealer(make([]byte, 16)); err == nil {
		t.Fatal("16-byte KEK accepted")
	}
}
