// Package auth owns who a request comes from and what it may do (SPEC 8):
// the credentials ingest-api accepts (static API keys from AUTH_TOKENS_FILE,
// JWT/OIDC bearer tokens verified against the issuer's JWKS, verified TLS
// client certificates), the policy file that maps subjects to scopes and
// namespaces, the authenticated Principal carried on the request context,
// the per-principal rate limiter, and the HTTPS server configuration with
// its certificate reloader.
//
// It knows nothing about routes or HTTP answers: internal/api decides which
// scope a route needs and how a denial is answered; this package only says
// who is asking and why a credential was refused, with a bounded Reason
// that metrics can use as a label.
package auth
