package metering

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash"
	"hash/crc32"
	"math/big"
	"sync"
	"unsafe"
)

// API keys look like "tg_" + 43 base62 characters of randomness (256 bits)
// + 6 base62 characters of CRC-32 checksum. The checksum lets the gateway
// reject a mistyped or made-up key without a Redis round trip.
const (
	keyPrefix     = "tg_"
	keyBodyLen    = 43
	keyCheckLen   = 6
	APIKeyLen     = len(keyPrefix) + keyBodyLen + keyCheckLen
	displayLength = len(keyPrefix) + 4
	base62        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// KeyHash is HMAC-SHA256(pepper, key): what Redis and Postgres store to find
// a key. Without the pepper, a leaked table does not reveal or verify keys.
type KeyHash [sha256.Size]byte

// NewAPIKey returns a fresh random key.
func NewAPIKey() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	body := encodeBase62(new(big.Int).SetBytes(raw[:]), keyBodyLen)
	check := encodeBase62(new(big.Int).SetUint64(uint64(crc32.ChecksumIEEE([]byte(body)))), keyCheckLen)
	return keyPrefix + body + check, nil
}

func encodeBase62(n *big.Int, width int) string {
	out := make([]byte, width)
	base, mod := big.NewInt(62), new(big.Int)
	for i := width - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62[mod.Int64()]
	}
	return string(out)
}

var base62Value = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base62); i++ {
		t[base62[i]] = int8(i)
	}
	return t
}()

// WellFormedKey reports whether s has the key format and a valid checksum.
// It does not allocate.
func WellFormedKey(s string) bool {
	if len(s) != APIKeyLen || s[:len(keyPrefix)] != keyPrefix {
		return false
	}
	body := s[len(keyPrefix) : len(keyPrefix)+keyBodyLen]
	for i := 0; i < len(body); i++ {
		if base62Value[body[i]] < 0 {
			return false
		}
	}
	var check uint64
	for _, c := range []byte(s[len(keyPrefix)+keyBodyLen:]) {
		v := base62Value[c]
		if v < 0 {
			return false
		}
		check = check*62 + uint64(v)
	}
	// The string-to-bytes view avoids a copy; crc32 only reads it.
	return check == uint64(crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(body), len(body))))
}

// KeyDisplayPrefix is the part of a key safe to show in lists ("tg_3fA9").
func KeyDisplayPrefix(key string) string {
	if len(key) < displayLength {
		return key
	}
	return key[:displayLength]
}

// KeyHasher computes key hashes with a pooled HMAC so the hot path does not
// allocate a new one per request.
type KeyHasher struct {
	pool sync.Pool
}

// NewKeyHasher returns a hasher for the given pepper, which must not be empty.
func NewKeyHasher(pepper []byte) (*KeyHasher, error) {
	if len(pepper) == 0 {
		return nil, errors.New("key pepper must not be empty")
	}
	p := append([]byte(nil), pepper...)
	return &KeyHasher{pool: sync.Pool{New: func() any { return &pooledHMAC{mac: hmac.New(sha256.New, p)} }}}, nil
}

// pooledHMAC is an HMAC with the buffer its sum is written to: Sum is an
// interface call, so a buffer on Hash's stack would escape to the heap on
// every call; this one lives as long as the pooled HMAC.
type pooledHMAC struct {
	mac hash.Hash
	sum KeyHash
}

// Hash returns HMAC-SHA256(pepper, key).
func (h *KeyHasher) Hash(key string) (out KeyHash) {
	p := h.pool.Get().(*pooledHMAC)
	p.mac.Reset()
	p.mac.Write(unsafe.Slice(unsafe.StringData(key), len(key))) // read only
	p.mac.Sum(p.sum[:0])
	out = p.sum
	h.pool.Put(p)
	return out
}

// KeySealer encrypts keys at rest with AES-256-GCM so admins can reveal them
// later; lookup never uses the ciphertext.
type KeySealer struct {
	aead cipher.AEAD
}

// NewKeySealer takes a 32-byte key-encryption key.
func NewKeySealer(kek []byte) (*KeySealer, error) {
	if len(kek) != 32 {
		return nil, errors.New("key_encryption_key must be 32 bytes (base64 encoded)")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &KeySealer{aead: aead}, nil
}

// Seal returns nonce||ciphertext. The key hash is bound as associated data,
// so a ciphertext copied onto another key row does not decrypt.
func (s *KeySealer) Seal(key string, hash KeyHash) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(key)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, []byte(key), hash[:]), nil
}

// Open reverses Seal.
func (s *KeySealer) Open(sealed []byte, hash KeyHash) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed key too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], hash[:])
	if err != nil {
		return "", errors.New("sealed key does not decrypt with this key_encryption_key")
	}
	return string(plain), nil
}
