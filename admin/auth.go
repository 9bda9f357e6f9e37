package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a token may do.
type Role string

const (
	// RoleAdmin may call every route.
	RoleAdmin Role = "admin"
	// RoleViewer may only read (GET and HEAD).
	RoleViewer Role = "viewer"
)

// ParseRole validates a role name: "admin" or "viewer".
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleViewer:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want %q or %q)", s, RoleAdmin, RoleViewer)
}

// Token is one bearer token allowed to call the API. Name is recorded as
// the actor of every write made with it; Secret is never logged.
type Token struct {
	Name   string
	Secret string
	Role   Role
}

// principal is the authenticated caller of a request.
type principal struct {
	name string
	role Role
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// actor is the token name recorded as the author of a write.
func actor(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p.name
}

// authenticator checks bearer tokens in constant time. Secrets are kept as
// SHA-256 digests so every comparison has the same length: neither the
// length nor the content of a secret leaks through timing.
type authenticator struct {
	tokens []storedToken
}

type storedToken struct {
	digest [sha256.Size]byte
	p      principal
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{tokens: make([]storedToken, len(tokens))}
	for i, t := range tokens {
		a.tokens[i] = storedToken{digest: sha256.Sum256([]byte(t.Secret)), p: principal{name: t.Name, role: t.Role}}
	}
	return a
}

// authenticate finds the token of the request's Authorization header. It
// compares against every configured token, whichever matches.
func (a *authenticator) authenticate(r *http.Request) (principal, bool) {
	secret, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return principal{}, false
	}
	d := sha256.Sum256([]byte(secret))
	var found principal
	match := 0
	for i := range a.tokens {
		eq := subtle.ConstantTimeCompare(d[:], a.tokens[i].digest[:])
		if eq == 1 {
			found = a.tokens[i].p
		}
		match |= eq
	}
	return found, match == 1
}

// bearer extracts the credentials of "Bearer <token>" (scheme case-insensitive).
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	t := strings.TrimSpace(h[len(scheme):])
	return t, t != ""
}
