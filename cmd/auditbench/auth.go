package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/auditstream/auditstream/internal/auth"
)

// benchAudience is the audience of the benchmark's JWTs.
const benchAudience = "auditbench"

// benchCredentials are the two credential kinds the api stage measures: an
// API key from a tokens file and a JWT from an OIDC issuer served here over
// TLS (discovery and JWKS, key generated for the run), with the settings
// that make ingest-api accept both.
type benchCredentials struct {
	env    []string // AUTH_* settings of ingest-api
	apiKey string
	jwt    string
	dir    string
	issuer *httptest.Server
}

func newBenchCredentials() (*benchCredentials, error) {
	dir, err := os.MkdirTemp("", "auditbench-auth-")
	if err != nil {
		return nil, err
	}
	c := &benchCredentials{dir: dir}
	tokensFile := filepath.Join(dir, "tokens.yaml")
	if c.apiKey, err = writeTokensFile(tokensFile); err != nil {
		c.Close()
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		c.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	c.issuer = httptest.NewTLSServer(mux)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": c.issuer.URL, "jwks_uri": c.issuer.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "bench", Algorithm: string(jose.ES256), Use: "sig"}}})
	})
	caFile := filepath.Join(dir, "issuer-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.issuer.Certificate().Raw}), 0o600); err != nil {
		c.Close()
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "bench"))
	if err != nil {
		c.Close()
		return nil, err
	}
	now := time.Now()
	c.jwt, err = jwt.Signed(signer).Claims(struct {
		jwt.Claims
		Scope string `json:"scope"`
	}{jwt.Claims{Issuer: c.issuer.URL, Subject: "auditbench-jwt", Audience: jwt.Audience{benchAudience},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}, "audit:write"}).Serialize()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("sign the benchmark JWT: %w", err)
	}
	c.env = []string{"AUTH_TOKENS_FILE=" + tokensFile, "AUTH_OIDC_ISSUER=" + c.issuer.URL,
		"AUTH_OIDC_AUDIENCE=" + benchAudience, "AUTH_OIDC_CA_FILE=" + caFile}
	return c, nil
}

// writeTokensFile writes an AUTH_TOKENS_FILE holding one new API key with
// the write scope, and returns the key.
func writeTokensFile(path string) (string, error) {
	token, entry, err := auth.NewToken("auditbench", []auth.Scope{auth.ScopeWrite}, nil)
	if err != nil {
		return "", err
	}
	return token, (auth.TokensFile{Tokens: []auth.TokenEntry{entry}}).WriteFile(path)
}

// Close stops the issuer and removes the files.
func (c *benchCredentials) Close() {
	if c.issuer != nil {
		c.issuer.Close()
	}
	_ = os.RemoveAll(c.dir)
}
