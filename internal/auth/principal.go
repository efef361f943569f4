package auth

import (
	"context"
	"fmt"
	"slices"
)

// Scope is one permission of SPEC 8.1. audit:admin does not imply the
// others; a principal holds each scope it needs.
type Scope string

const (
	ScopeWrite Scope = "audit:write"
	ScopeRead  Scope = "audit:read"
	ScopeAdmin Scope = "audit:admin"
)

// AllScopes lists every scope, in the order the README's table shows them.
var AllScopes = []Scope{ScopeWrite, ScopeRead, ScopeAdmin}

// ParseScope returns the scope named s.
func ParseScope(s string) (Scope, error) {
	for _, sc := range AllScopes {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("unknown scope %q (want one of audit:write, audit:read, audit:admin)", s)
}

// Principal is who a request comes from: the name recorded as submitted_by,
// placed_by and exported_by, the scopes it holds, and the namespaces it is
// limited to (none: unrestricted).
type Principal struct {
	Name       string
	Scopes     []Scope
	Namespaces []string
}

// AnonymousName is the principal of every request when AUTH_DISABLED=true.
const AnonymousName = "anonymous"

// Anonymous is the principal when authentication is disabled: every scope,
// no namespace restriction, so a development stack behaves as before
// access control existed.
func Anonymous() Principal {
	return Principal{Name: AnonymousName, Scopes: slices.Clone(AllScopes)}
}

// HasScope reports whether p holds s.
func (p Principal) HasScope(s Scope) bool { return slices.Contains(p.Scopes, s) }

// Restricted reports whether p is limited to a set of namespaces.
func (p Principal) Restricted() bool { return len(p.Namespaces) > 0 }

// MayUseNamespace reports whether p may read or write records of namespace
// ns. A restricted principal may not use records without a namespace: they
// belong to no team, so no team's credential reaches them.
func (p Principal) MayUseNamespace(ns string) bool {
	return !p.Restricted() || (ns != "" && slices.Contains(p.Namespaces, ns))
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the authenticated principal of the request whose
// context ctx is; false when the request was not authenticated (routes
// that are public by nature, or code outside a request).
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
