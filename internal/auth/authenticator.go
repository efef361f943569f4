package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
)

// MaxTokenBytes bounds a bearer token. Issued API keys are 47 bytes and
// real JWTs a few KiB; anything longer is refused before it is hashed or
// parsed, so a huge header cannot buy CPU time.
const MaxTokenBytes = 8 << 10

// Config selects the credential sources; any combination may be set.
type Config struct {
	// TokensFile is AUTH_TOKENS_FILE (static API keys); empty: none.
	TokensFile string
	// PolicyFile is AUTH_POLICY_FILE: scopes and namespaces for JWT
	// subjects that carry no scope claim and for client certificates.
	PolicyFile string
	// JWT enables bearer JWTs; nil: none.
	JWT *JWTConfig
	// ClientCertificates accepts a verified TLS client certificate as a
	// credential (TLS_CLIENT_CA_FILE set); its subject is mapped by the
	// policy file.
	ClientCertificates bool
	// FileCheckInterval is how often the tokens and policy files are
	// looked at for changes.
	FileCheckInterval time.Duration
}

// Authenticator turns a request's credential into a Principal.
type Authenticator struct {
	tokens *reloading[tokenSet]
	policy *reloading[policy]
	jwt    *jwtVerifier
	certs  bool
}

// New loads the files of cfg and returns an Authenticator; a file that
// cannot be loaded at start is an error (later, the last good one stays).
// reg receives auditstream_auth_reloads_total.
func New(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Authenticator, error) {
	if cfg.TokensFile == "" && cfg.JWT == nil && !cfg.ClientCertificates {
		return nil, errors.New("auth: no credential source configured")
	}
	if cfg.FileCheckInterval <= 0 {
		return nil, errors.New("auth: the file check interval must be positive")
	}
	reloads := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "auditstream_auth_reloads_total",
		Help: "Reloads of the tokens and policy files after they changed, by file and result (ok, error: the last good file stays in force).",
	}, []string{"file", "result"})
	a := &Authenticator{certs: cfg.ClientCertificates}
	watch := func(kind, path string) (func(), func(error)) {
		// Both series exist from the start, so rates and alerts work.
		ok, failed := reloads.WithLabelValues(kind, "ok"), reloads.WithLabelValues(kind, "error")
		return func() {
				ok.Inc()
				log.Info("auth file reloaded", zap.String("file", kind), zap.String("path", path))
			}, func(err error) {
				failed.Inc()
				log.Error("auth file not reloaded; the last good one stays in force", zap.String("file", kind), zap.String("path", path), zap.Error(err))
			}
	}
	var err error
	if cfg.TokensFile != "" {
		onReload, onError := watch("tokens", cfg.TokensFile)
		a.tokens, err = newReloading([]string{cfg.TokensFile}, cfg.FileCheckInterval,
			func() (*tokenSet, error) { return loadTokens(cfg.TokensFile) }, onReload, onError)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	if cfg.PolicyFile != "" {
		onReload, onError := watch("policy", cfg.PolicyFile)
		a.policy, err = newReloading([]string{cfg.PolicyFile}, cfg.FileCheckInterval,
			func() (*policy, error) { return loadPolicy(cfg.PolicyFile) }, onReload, onError)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	if cfg.JWT != nil {
		if a.jwt, err = newJWTVerifier(*cfg.JWT); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return a, nil
}

// Refresh fetches the JWT issuer's keys now, when JWTs are configured, so
// start-up can report an issuer it cannot reach. Tokens are still verified
// later: the keys are fetched again when first needed.
func (a *Authenticator) Refresh(ctx context.Context) error {
	if a.jwt == nil {
		return nil
	}
	return a.jwt.Refresh(ctx)
}

// Authenticate returns the principal of r: its bearer token when it has an
// Authorization header, else its verified client certificate. A refused
// credential is an *Error carrying the Reason.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		if cert := verifiedClientCert(r); cert != nil && a.certs {
			if p := a.certificatePrincipal(cert); p.Name != audit.SystemPrincipal {
				return p, nil
			}
			return Principal{}, refuse(ReasonReservedPrincipal, errReservedName)
		}
		return Principal{}, refuse(ReasonMissing, nil)
	}
	token, err := bearerToken(values)
	if err != nil {
		return Principal{}, err
	}
	if a.tokens != nil {
		if p, ok := a.tokens.get().lookup(token); ok {
			return p, nil
		}
	}
	if a.jwt != nil && looksLikeJWT(token) {
		c, err := a.jwt.verify(r.Context(), token)
		if err != nil {
			return Principal{}, err
		}
		if c.subject == audit.SystemPrincipal {
			return Principal{}, refuse(ReasonReservedPrincipal, errReservedName)
		}
		return a.jwtPrincipal(c), nil
	}
	return Principal{}, refuse(ReasonUnknownToken, nil)
}

// bearerToken extracts the token of the one "Bearer <token>" header
// (RFC 6750 section 2.1; the scheme is case-insensitive).
func bearerToken(values []string) (string, error) {
	if len(values) != 1 {
		return "", refuse(ReasonMalformed, errors.New("more than one Authorization header"))
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", refuse(ReasonMalformed, errors.New("the Authorization scheme is not Bearer"))
	}
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return "", refuse(ReasonMalformed, errors.New("the bearer token is empty"))
	case len(token) > MaxTokenBytes:
		return "", refuse(ReasonTooLarge, fmt.Errorf("a %d-byte token", len(token)))
	}
	return token, nil
}

// jwtPrincipal gives a JWT subject its scopes: those the token claims, or
// when it claims none the policy file's. The policy's namespaces apply
// either way: a restriction is never lifted by what a token says.
func (a *Authenticator) jwtPrincipal(c jwtClaims) Principal {
	p := Principal{Name: c.subject, Scopes: c.scopes}
	if a.policy == nil {
		return p
	}
	if rule, ok := a.policy.get().match(kindJWT, c.subject); ok {
		if len(p.Scopes) == 0 {
			p.Scopes = rule.Scopes
		}
		p.Namespaces = rule.Namespaces
	}
	return p
}

// certificatePrincipal names a client certificate by its subject; scopes
// come only from the policy file, so a certificate without a rule is a
// principal that may do nothing.
func (a *Authenticator) certificatePrincipal(cert *x509.Certificate) Principal {
	p := Principal{Name: cert.Subject.String()}
	if a.policy == nil {
		return p
	}
	if rule, ok := a.policy.get().match(kindCertificate, p.Name); ok {
		p.Scopes, p.Namespaces = rule.Scopes, rule.Namespaces
	}
	return p
}

// verifiedClientCert is the leaf of the verified chain; a certificate the
// TLS layer did not verify is never looked at.
func verifiedClientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// Disabled is the authenticator of AUTH_DISABLED=true: every request is
// Anonymous.
type Disabled struct{}

// Authenticate returns Anonymous.
func (Disabled) Authenticate(*http.Request) (Principal, error) { return Anonymous(), nil }
