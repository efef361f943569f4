package auth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// TestNewToken: issued tokens are prefixed, long, distinct, and their
// entry matches them and nothing else.
func TestNewToken(t *testing.T) {
	tok, entry, err := NewToken("svc", []Scope{ScopeWrite}, []string{"payments"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, TokenPrefix))
	require.GreaterOrEqual(t, len(tok), len(TokenPrefix)+43, "32 random bytes, base64url")
	require.Equal(t, TokenSHA256(tok), entry.SHA256)
	tok2, _, err := NewToken("svc", []Scope{ScopeWrite}, nil)
	require.NoError(t, err)
	require.NotEqual(t, tok, tok2)

	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, TokensFile{Tokens: []TokenEntry{entry}}.WriteFile(path))
	set, err := loadTokens(path)
	require.NoError(t, err)
	p, ok := set.lookup(tok)
	require.True(t, ok)
	require.Equal(t, Principal{Name: "svc", Scopes: []Scope{ScopeWrite}, Namespaces: []string{"payments"}}, p)
	_, ok = set.lookup(tok2)
	require.False(t, ok)

	_, _, err = NewToken("system:auditstream", []Scope{ScopeWrite}, nil)
	require.ErrorContains(t, err, "reserved for the events auditstream records about itself")

	_, _, err = NewToken("", []Scope{"audit:everything"}, nil)
	require.ErrorContains(t, err, "name is empty")
	require.ErrorContains(t, err, `unknown scope "audit:everything"`)
}

func TestTokensFileIsChecked(t *testing.T) {
	hash := TokenSHA256("x")
	for name, tc := range map[string]struct{ body, want string }{
		"not hex":         {`tokens: [{name: a, sha256: "zz", scopes: [audit:read]}]`, "64 lowercase hex"},
		"upper case":      {fmt.Sprintf(`tokens: [{name: a, sha256: %q, scopes: [audit:read]}]`, strings.ToUpper(hash)), "64 lowercase hex"},
		"no scopes":       {fmt.Sprintf(`tokens: [{name: a, sha256: %q}]`, hash), "scopes is empty"},
		"unknown scope":   {fmt.Sprintf(`tokens: [{name: a, sha256: %q, scopes: [admin]}]`, hash), `unknown scope "admin"`},
		"misspelt key":    {fmt.Sprintf(`tokens: [{name: a, sha256: %q, scopes: [audit:read], namespace: [x]}]`, hash), "namespace"},
		"twice":           {fmt.Sprintf(`tokens: [{name: a, sha256: %q, scopes: [audit:read]}, {name: b, sha256: %q, scopes: [audit:read]}]`, hash, hash), "appears twice"},
		"empty namespace": {fmt.Sprintf(`tokens: [{name: a, sha256: %q, scopes: [audit:read], namespaces: [""]}]`, hash), "empty entry"},
		"system's name":   {fmt.Sprintf(`tokens: [{name: "system:auditstream", sha256: %q, scopes: [audit:write]}]`, hash), "reserved"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadTokens(writeFile(t, tc.body))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestPolicy(t *testing.T) {
	p, err := loadPolicy(writeFile(t, `rules:
  - subject: "system:serviceaccount:payments:admin"
    scopes: [audit:admin]
  - subject: "system:serviceaccount:payments:*"
    scopes: [audit:write]
    namespaces: [payments]
  - certificate: "CN=*,O=Example"
    scopes: [audit:read]
`))
	require.NoError(t, err)
	for _, tc := range []struct {
		kind    credentialKind
		subject string
		scope   Scope
		ok      bool
	}{
		{kindJWT, "system:serviceaccount:payments:admin", ScopeAdmin, true}, // first match wins
		{kindJWT, "system:serviceaccount:payments:api", ScopeWrite, true},
		{kindJWT, "system:serviceaccount:billing:api", "", false},
		{kindJWT, "CN=x,O=Example", "", false}, // a JWT subject never matches a certificate rule
		{kindCertificate, "CN=x,O=Example", ScopeRead, true},
		{kindCertificate, "system:serviceaccount:payments:api", "", false},
	} {
		r, ok := p.match(tc.kind, tc.subject)
		require.Equal(t, tc.ok, ok, tc.subject)
		if ok {
			require.Equal(t, []Scope{tc.scope}, r.Scopes, tc.subject)
		}
	}
	for body, want := range map[string]string{
		`rules: [{scopes: [audit:read]}]`:                                 "exactly one of subject and certificate",
		`rules: [{subject: a, certificate: b, scopes: [audit:read]}]`:     "exactly one of subject and certificate",
		`rules: [{subject: "[", scopes: [audit:read]}]`:                   "syntax error in pattern",
		`rules: [{subject: a}]`:                                           "scopes is empty",
		`rules: [{subject: "system:auditstream", scopes: [audit:write]}]`: "reserved",
	} {
		_, err := loadPolicy(writeFile(t, body))
		require.ErrorContains(t, err, want, body)
	}
}

func TestScopeClaims(t *testing.T) {
	for raw, want := range map[string][]Scope{
		`{"scope": "openid audit:read audit:write"}`: {ScopeRead, ScopeWrite},
		`{"scp": ["audit:admin", "profile"]}`:        {ScopeAdmin},
		`{"scp": "audit:read audit:read"}`:           {ScopeRead},
		`{"scope": "openid"}`:                        nil,
		`{}`:                                         nil,
	} {
		var c scopeClaims
		require.NoError(t, json.Unmarshal([]byte(raw), &c))
		require.Equal(t, want, c.scopes(), raw)
	}
}

// TestLimiterMemoryIsBounded: buckets of idle principals are forgotten
// (a full bucket is a new one), and the map never exceeds its bound.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l, err := NewLimiter(1000, 10)
	require.NoError(t, err)
	now := time.Now()
	l.now = func() time.Time { return now }
	for i := range maxLimitedPrincipals + 50 {
		ok, _ := l.Allow(fmt.Sprint("p", i), 1)
		require.True(t, ok)
	}
	require.LessOrEqual(t, len(l.buckets), maxLimitedPrincipals)

	// A principal that spent its burst keeps its debt while busy...
	for range 10 {
		ok, _ := l.Allow("busy", 1)
		require.True(t, ok)
	}
	ok, wait := l.Allow("busy", 1)
	require.False(t, ok)
	require.Positive(t, wait)
	// ...and when the others have refilled (one token in 1 ms) and it has
	// not (five of ten in 5 ms), they are the ones evicted.
	l.evict(now.Add(5 * time.Millisecond))
	_, kept := l.buckets["busy"]
	require.True(t, kept, "a bucket that has not refilled is not forgotten")
	require.Len(t, l.buckets, 1)
	ok, _ = l.Allow("batch", 11)
	require.False(t, ok, "more than the burst never passes")
}

// TestReloadKeepsTheLastGoodFile: a file that changes is loaded again; one
// that breaks keeps the previous value and reports the error.
func TestReloadKeepsTheLastGoodFile(t *testing.T) {
	path := writeFile(t, "v1")
	var errs []error
	r, err := newReloading([]string{path}, time.Nanosecond, func() (*string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if string(b) == "broken" {
			return nil, fmt.Errorf("does not parse")
		}
		s := string(b)
		return &s, nil
	}, func() {}, func(err error) { errs = append(errs, err) })
	require.NoError(t, err)
	require.Equal(t, "v1", *r.get())

	require.NoError(t, os.WriteFile(path+".tmp", []byte("v2"), 0o600))
	require.NoError(t, os.Rename(path+".tmp", path)) // same size, new inode
	require.Eventually(t, func() bool { return *r.get() == "v2" }, 5*time.Second, time.Millisecond)

	require.NoError(t, os.WriteFile(path, []byte("broken"), 0o600))
	require.Eventually(t, func() bool { r.get(); return len(errs) > 0 }, 5*time.Second, time.Millisecond)
	require.Equal(t, "v2", *r.get())
	require.NoError(t, os.Remove(path))
	r.get()
	require.Equal(t, "v2", *r.get(), "a deleted file keeps the last good value too")
}

func TestNewRefusesNoSource(t *testing.T) {
	_, err := New(Config{FileCheckInterval: time.Second}, zap.NewNop(), prometheus.NewRegistry())
	require.ErrorContains(t, err, "no credential source")
	_, err = New(Config{TokensFile: "/does/not/exist", FileCheckInterval: time.Second}, zap.NewNop(), prometheus.NewRegistry())
	require.Error(t, err)
	_, err = New(Config{JWT: &JWTConfig{Issuer: "https://i"}, FileCheckInterval: time.Second}, zap.NewNop(), prometheus.NewRegistry())
	require.ErrorContains(t, err, "audience is required")
}
