package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
)

// Auth is who may call ingest-api (SPEC 8.1, 8.2, 8.4).
type Auth struct {
	Disabled bool `name:"auth-disabled" env:"AUTH_DISABLED" help:"Run without access control: every request is the principal 'anonymous' with every scope. For development only; /health then reports auth: disabled."`

	TokensFile string `name:"auth-tokens-file" env:"AUTH_TOKENS_FILE" placeholder:"PATH" help:"YAML file of API keys (tokens: [{name, sha256, scopes, namespaces}]); re-read when it changes."`
	PolicyFile string `name:"auth-policy-file" env:"AUTH_POLICY_FILE" placeholder:"PATH" help:"YAML file mapping JWT subjects and client certificate subjects (globs) to scopes and namespaces; re-read when it changes."`

	OIDCIssuer   string `name:"auth-oidc-issuer" env:"AUTH_OIDC_ISSUER" placeholder:"URL" help:"Issuer of accepted JWTs (the iss claim); its JWKS is found by OIDC discovery unless --auth-jwks-url is set."`
	JWKSURL      string `name:"auth-jwks-url" env:"AUTH_JWKS_URL" placeholder:"URL" help:"JWKS of the issuer, skipping discovery."`
	OIDCAudience string `name:"auth-oidc-audience" env:"AUTH_OIDC_AUDIENCE" help:"Audience a JWT must carry in aud (required with an issuer)."`
	OIDCCAFile   string `name:"auth-oidc-ca-file" env:"AUTH_OIDC_CA_FILE" placeholder:"PATH" help:"PEM CA bundle for the issuer's HTTPS endpoints (e.g. a cluster CA); default: the system roots."`
	// 30 s covers the clock skew of NTP-synchronised hosts with room to
	// spare while keeping an expired token's afterlife short.
	JWTLeeway time.Duration `name:"auth-jwt-leeway" env:"AUTH_JWT_LEEWAY" default:"30s" help:"Clock skew allowed in a JWT's exp, nbf and iat."`
	// An issuer that rotates keys publishes the new one before using it,
	// so a new kid is found on the first refresh after it appears; the
	// interval only bounds how often forged kids can make us fetch.
	JWKSRefreshInterval time.Duration `name:"auth-jwks-refresh-interval" env:"AUTH_JWKS_REFRESH_INTERVAL" default:"30s" help:"Least time between two fetches of the JWKS (an unknown kid triggers one)."`
	// A key the issuer withdrew stops verifying within this age.
	JWKSMaxAge time.Duration `name:"auth-jwks-max-age" env:"AUTH_JWKS_MAX_AGE" default:"15m" help:"Age after which the cached JWKS is fetched again."`

	// Files are stat'ed at most this often; a revoked key stops working
	// within it.
	FileCheckInterval time.Duration `name:"auth-file-check-interval" env:"AUTH_FILE_CHECK_INTERVAL" default:"2s" help:"How often the tokens, policy and TLS certificate files are checked for changes."`

	// Rate limits are per principal. The burst must hold the largest batch
	// (a batch costs one token per event); 2,000 events a second per
	// principal is far above what one service writes through the API
	// (high-volume producers write to Kafka directly).
	RateLimitRPS   float64 `name:"rate-limit-rps" env:"RATE_LIMIT_RPS" default:"2000" help:"Events (and read requests) per second each principal may send; 0 disables rate limiting."`
	RateLimitBurst int     `name:"rate-limit-burst" env:"RATE_LIMIT_BURST" default:"10000" help:"Bucket size of each principal's rate limit; at least MAX_BATCH_SIZE."`

	TrustedProxies []string `name:"trusted-proxies" env:"TRUSTED_PROXIES" sep:"," placeholder:"CIDR,..." help:"Peers (CIDRs or addresses) whose X-Forwarded-For is believed for the client address in logs; none by default."`
}

// HTTPTLS is HTTPS for ingest-api (SPEC 8.5).
type HTTPTLS struct {
	CertFile     string `name:"tls-cert-file" env:"TLS_CERT_FILE" placeholder:"PATH" help:"PEM certificate (chain) to serve HTTPS with; re-read when it changes. With it the API speaks HTTPS only."`
	KeyFile      string `name:"tls-key-file" env:"TLS_KEY_FILE" placeholder:"PATH" help:"PEM private key of --tls-cert-file."`
	ClientCAFile string `name:"tls-client-ca-file" env:"TLS_CLIENT_CA_FILE" placeholder:"PATH" help:"PEM CAs of client certificates: enables mutual TLS, a verified certificate's subject being a principal (scopes from AUTH_POLICY_FILE)."`
}

// Enabled reports whether the API serves HTTPS.
func (t HTTPTLS) Enabled() bool { return t.CertFile != "" }

func (t HTTPTLS) validate() error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together"))
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		errs = append(errs, errors.New("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE: mutual TLS is HTTPS"))
	}
	return errors.Join(errs...)
}

// validate reports settings that cannot work; maxBatch is the largest
// batch the burst must hold, clientCerts whether mutual TLS is on (itself
// a credential source).
func (a Auth) validate(maxBatch int, clientCerts bool) error {
	var errs []error
	sources := a.TokensFile != "" || a.OIDCIssuer != "" || clientCerts
	switch {
	case a.Disabled && sources:
		errs = append(errs, errors.New("AUTH_DISABLED=true and a credential source (AUTH_TOKENS_FILE, AUTH_OIDC_ISSUER, TLS_CLIENT_CA_FILE) are both set: choose one"))
	case !a.Disabled && !sources:
		errs = append(errs, errors.New("no credential source: set AUTH_TOKENS_FILE, AUTH_OIDC_ISSUER (with AUTH_OIDC_AUDIENCE) or TLS_CLIENT_CA_FILE, or AUTH_DISABLED=true to run without access control (development only)"))
	}
	if a.OIDCIssuer == "" && (a.JWKSURL != "" || a.OIDCAudience != "" || a.OIDCCAFile != "") {
		errs = append(errs, errors.New("AUTH_JWKS_URL, AUTH_OIDC_AUDIENCE and AUTH_OIDC_CA_FILE need AUTH_OIDC_ISSUER: a JWT's iss is always checked"))
	}
	if a.OIDCIssuer != "" && a.OIDCAudience == "" {
		errs = append(errs, errors.New("AUTH_OIDC_AUDIENCE is required with AUTH_OIDC_ISSUER: a token issued for another service must not be accepted"))
	}
	if a.PolicyFile != "" && a.OIDCIssuer == "" && !clientCerts {
		errs = append(errs, errors.New("AUTH_POLICY_FILE maps JWT subjects and client certificates: set AUTH_OIDC_ISSUER or TLS_CLIENT_CA_FILE too"))
	}
	if a.JWTLeeway < 0 || a.JWTLeeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("AUTH_JWT_LEEWAY must be between 0 and 5m, got %s", a.JWTLeeway))
	}
	if a.JWKSRefreshInterval < time.Second || a.JWKSMaxAge < a.JWKSRefreshInterval {
		errs = append(errs, fmt.Errorf("AUTH_JWKS_REFRESH_INTERVAL must be at least 1s and AUTH_JWKS_MAX_AGE not below it, got %s and %s", a.JWKSRefreshInterval, a.JWKSMaxAge))
	}
	if a.FileCheckInterval <= 0 {
		errs = append(errs, errors.New("AUTH_FILE_CHECK_INTERVAL must be positive"))
	}
	if a.RateLimitRPS < 0 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_RPS must not be negative, got %g", a.RateLimitRPS))
	}
	if a.RateLimitRPS > 0 && a.RateLimitBurst < maxBatch {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_BURST (%d) must be at least MAX_BATCH_SIZE (%d), or a full batch could never pass", a.RateLimitBurst, maxBatch))
	}
	for _, p := range a.TrustedProxies {
		p = strings.TrimSpace(p)
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is neither a CIDR nor an address", p))
			}
		}
	}
	return errors.Join(errs...)
}

// Authenticator returns the settings of package auth; clientCerts says
// whether mutual TLS is on.
func (a Auth) Authenticator(clientCerts bool) auth.Config {
	c := auth.Config{
		TokensFile:         a.TokensFile,
		PolicyFile:         a.PolicyFile,
		ClientCertificates: clientCerts,
		FileCheckInterval:  a.FileCheckInterval,
	}
	if a.OIDCIssuer != "" {
		c.JWT = &auth.JWTConfig{
			Issuer:             a.OIDCIssuer,
			JWKSURL:            a.JWKSURL,
			Audience:           a.OIDCAudience,
			CAFile:             a.OIDCCAFile,
			Leeway:             a.JWTLeeway,
			MinRefreshInterval: a.JWKSRefreshInterval,
			MaxKeyAge:          a.JWKSMaxAge,
		}
	}
	return c
}
