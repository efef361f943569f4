package auth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWTConfig configures bearer JWTs (OIDC ID tokens, Kubernetes projected
// service-account tokens, any issuer that publishes a JWKS).
//
// Parsing, the algorithm allow-list and signature checks are go-jose's; the
// claim checks are go-jose's too (ValidateWithLeeway). go-oidc's verifier
// is not used because it gives exp no leeway and nbf a fixed five minutes,
// and its key set fetches the JWKS again for every token with an unknown
// kid, so a flood of forged kids becomes a flood of fetches: this package
// keeps the keys itself and bounds how often it fetches them.
type JWTConfig struct {
	// Issuer is the expected iss claim. Without JWKSURL its discovery
	// document (Issuer + /.well-known/openid-configuration) names the key
	// set, and must name this issuer.
	Issuer string
	// JWKSURL skips discovery, for issuers whose discovery document is not
	// reachable from the API (a Kubernetes API server's is, with the
	// issuer-discovery role bound; see the README).
	JWKSURL string
	// Audience must be one of the token's aud values: a token minted for
	// another service is refused.
	Audience string
	// Leeway absorbs clock skew between the issuer and this host in exp,
	// nbf and iat.
	Leeway time.Duration
	// MinRefreshInterval bounds JWKS fetches: however many tokens carry an
	// unknown kid, the keys are fetched at most once per interval.
	MinRefreshInterval time.Duration
	// MaxKeyAge makes the keys be fetched again once they are this old,
	// so a key the issuer withdrew stops verifying within it.
	MaxKeyAge time.Duration
	// CAFile is a PEM bundle trusted for the issuer's HTTPS endpoints (a
	// cluster CA, a private PKI); empty: the system roots.
	CAFile string
	// Now is the clock; nil means time.Now. Tests move it past the refresh
	// interval instead of waiting it out.
	Now func() time.Time
}

// signingAlgorithms are the only algorithms accepted: asymmetric ones, so
// "none" and HMAC (the trick of signing HS256 with the issuer's public key
// as secret) fail before any key is consulted.
var signingAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// maxFetchBytes bounds a discovery document or key set.
const maxFetchBytes = 1 << 20

// verifiedCacheSize bounds the verified-token cache: enough for every
// client of a large deployment, a few MiB at most.
const verifiedCacheSize = 10000

// jwtClaims is what a verified JWT contributes to its principal.
type jwtClaims struct {
	subject string
	scopes  []Scope // from scope/scp; empty when the token carries none
	expiry  time.Time
}

type jwtVerifier struct {
	cfg    JWTConfig
	client *http.Client
	now    func() time.Time

	keys    atomic.Pointer[keySnapshot]
	fetchMu chan struct{} // one fetch at a time; a channel so waiting honours ctx
	// Guarded by fetchMu:
	lastFetch time.Time
	jwksURL   string

	cacheMu sync.Mutex
	cache   map[[sha256.Size]byte]jwtClaims
}

type keySnapshot struct {
	keys    []jose.JSONWebKey
	fetched time.Time
}

func newJWTVerifier(cfg JWTConfig) (*jwtVerifier, error) {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("JWT: the issuer is required (it is the iss every token must carry)"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("JWT: the audience is required (a token for another service must not be accepted)"))
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("JWT: leeway must be between 0 and 5m, got %s", cfg.Leeway))
	}
	if cfg.MinRefreshInterval <= 0 || cfg.MaxKeyAge < cfg.MinRefreshInterval {
		errs = append(errs, errors.New("JWT: the refresh interval must be positive and not above the key age"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	client, err := issuerClient(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &jwtVerifier{
		cfg: cfg, client: client, now: now, jwksURL: cfg.JWKSURL,
		fetchMu: make(chan struct{}, 1),
		cache:   make(map[[sha256.Size]byte]jwtClaims),
	}, nil
}

// looksLikeJWT reports whether token has the shape of a compact JWS; an
// API key never does.
func looksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }

// verify checks a compact JWT and returns its claims. A token verified
// before is answered from a cache keyed by its SHA-256 until it expires:
// signature checks dominate the cost of a request otherwise.
func (v *jwtVerifier) verify(ctx context.Context, raw string) (jwtClaims, error) {
	now := v.now()
	sum := sha256.Sum256([]byte(raw))
	v.cacheMu.Lock()
	c, ok := v.cache[sum]
	v.cacheMu.Unlock()
	if ok {
		if now.Add(-v.cfg.Leeway).After(c.expiry) {
			return jwtClaims{}, refuse(ReasonExpiredJWT, jwt.ErrExpired)
		}
		return c, nil
	}
	c, err := v.verifyUncached(ctx, raw, now)
	if err != nil {
		return jwtClaims{}, err
	}
	v.remember(sum, c, now)
	return c, nil
}

func (v *jwtVerifier) verifyUncached(ctx context.Context, raw string, now time.Time) (jwtClaims, error) {
	tok, err := jwt.ParseSigned(raw, signingAlgorithms)
	if err != nil {
		return jwtClaims{}, refuse(ReasonInvalidJWT, err)
	}
	if len(tok.Headers) != 1 {
		return jwtClaims{}, refuse(ReasonInvalidJWT, errors.New("not exactly one signature"))
	}
	hdr := tok.Headers[0]
	keys, err := v.keysFor(ctx, hdr.KeyID)
	if err != nil {
		return jwtClaims{}, err
	}
	var (
		std   jwt.Claims
		extra scopeClaims
		vErr  = errors.New("no key of the issuer has kid " + hdr.KeyID)
	)
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if vErr = tok.Claims(k.Key, &std, &extra); vErr == nil {
			break
		}
	}
	if vErr != nil {
		return jwtClaims{}, refuse(ReasonInvalidJWT, vErr)
	}
	if std.Expiry == nil {
		return jwtClaims{}, refuse(ReasonInvalidJWT, errors.New("no exp claim: a token that never expires is not accepted"))
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: now}, v.cfg.Leeway)
	if errors.Is(err, jwt.ErrExpired) {
		return jwtClaims{}, refuse(ReasonExpiredJWT, err)
	}
	if err != nil {
		return jwtClaims{}, refuse(ReasonInvalidJWT, err)
	}
	if std.Subject == "" {
		return jwtClaims{}, refuse(ReasonInvalidJWT, errors.New("no sub claim"))
	}
	return jwtClaims{subject: std.Subject, scopes: extra.scopes(), expiry: std.Expiry.Time()}, nil
}

func (v *jwtVerifier) remember(sum [sha256.Size]byte, c jwtClaims, now time.Time) {
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if len(v.cache) >= verifiedCacheSize {
		for k, e := range v.cache {
			if now.After(e.expiry) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= verifiedCacheSize {
			clear(v.cache) // all live: start over rather than grow
		}
	}
	v.cache[sum] = c
}

// scopeClaims reads the two customary scope claims: scope (OAuth 2, one
// space-separated string) and scp (a list, or a string, by issuer).
type scopeClaims struct {
	Scope string          `json:"scope"`
	Scp   json.RawMessage `json:"scp"`
}

// scopes returns the audit scopes among the claimed ones; others (openid,
// profile, ...) belong to other services and are ignored.
func (s scopeClaims) scopes() []Scope {
	words := strings.Fields(s.Scope)
	var list []string
	var str string
	switch {
	case json.Unmarshal(s.Scp, &list) == nil:
		words = append(words, list...)
	case json.Unmarshal(s.Scp, &str) == nil:
		words = append(words, strings.Fields(str)...)
	}
	var out []Scope
	for _, w := range words {
		if sc, err := ParseScope(w); err == nil && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// keysFor returns the cached keys with kid (every key when the token names
// none), fetching the key set first when it is unknown or too old, and at
// most once per MinRefreshInterval whatever the tokens ask for.
func (v *jwtVerifier) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	snap := v.keys.Load()
	if snap != nil && v.now().Sub(snap.fetched) < v.cfg.MaxKeyAge {
		if ks := snap.find(kid); len(ks) > 0 {
			return ks, nil
		}
	}
	fresh, err := v.refresh(ctx)
	if fresh != nil {
		snap = fresh
	}
	if snap == nil {
		return nil, refuse(ReasonKeysUnavailable, err)
	}
	if ks := snap.find(kid); len(ks) > 0 {
		return ks, nil
	}
	return nil, refuse(ReasonInvalidJWT, fmt.Errorf("no key of the issuer has kid %q", kid))
}

func (s *keySnapshot) find(kid string) []jose.JSONWebKey {
	if kid == "" {
		return s.keys
	}
	var out []jose.JSONWebKey
	for _, k := range s.keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// Refresh fetches the key set now (unless one was fetched within
// MinRefreshInterval), so that start-up reports an unreachable issuer
// instead of the first client.
func (v *jwtVerifier) Refresh(ctx context.Context) error {
	_, err := v.refresh(ctx)
	return err
}

// refresh fetches the key set unless a fetch happened within
// MinRefreshInterval; it returns the snapshot in force afterwards.
// Concurrent callers wait for the one fetch in flight instead of starting
// their own.
func (v *jwtVerifier) refresh(ctx context.Context) (*keySnapshot, error) {
	select {
	case v.fetchMu <- struct{}{}:
	case <-ctx.Done():
		return v.keys.Load(), ctx.Err()
	}
	defer func() { <-v.fetchMu }()
	now := v.now()
	if !v.lastFetch.IsZero() && now.Sub(v.lastFetch) < v.cfg.MinRefreshInterval {
		return v.keys.Load(), errors.New("key set fetched moments ago; not fetching again yet")
	}
	v.lastFetch = now
	keys, err := v.fetchKeys(ctx)
	if err != nil {
		return v.keys.Load(), err
	}
	snap := &keySnapshot{keys: keys, fetched: now}
	v.keys.Store(snap)
	return snap, nil
}

func (v *jwtVerifier) fetchKeys(ctx context.Context) ([]jose.JSONWebKey, error) {
	if v.jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := v.getJSON(ctx, strings.TrimSuffix(v.cfg.Issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return nil, fmt.Errorf("OIDC discovery: %w", err)
		}
		// OIDC Discovery 1.0 section 4.3: the document must name the
		// issuer it was fetched for, or it is someone else's.
		if doc.Issuer != v.cfg.Issuer {
			return nil, fmt.Errorf("OIDC discovery: the document names issuer %q, not %q", doc.Issuer, v.cfg.Issuer)
		}
		if doc.JWKSURI == "" {
			return nil, errors.New("OIDC discovery: the document has no jwks_uri")
		}
		v.jwksURL = doc.JWKSURI
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := v.getJSON(ctx, v.jwksURL, &set); err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		// RFC 7517 section 5: keys of a type this implementation does not
		// understand are skipped, not fatal to the whole set.
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("fetch JWKS: no usable public signing key in the set")
	}
	return keys, nil
}

// issuerClient is the HTTP client of discovery and key fetches: bounded in
// time, trusting caFile's CAs when given.
func issuerClient(caFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pool, err := loadCAs(caFile)
		if err != nil {
			return nil, fmt.Errorf("JWT: CA file: %w", err)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t, Timeout: 10 * time.Second}, nil
}

func (v *jwtVerifier) getJSON(ctx context.Context, url string, dst any) error {
	// Keys outlive the request that asked for them: a client that hangs up
	// must not leave the next one without keys.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxFetchBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if len(b) > maxFetchBytes {
		return fmt.Errorf("GET %s: more than %d bytes", url, maxFetchBytes)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
