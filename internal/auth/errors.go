package auth

import (
	"errors"
	"fmt"

	"github.com/auditstream/auditstream/internal/audit"
)

// Reason says why a credential was refused. The values are few and fixed,
// so they serve as the reason label of auditstream_auth_denied_total.
type Reason string

const (
	// ReasonMissing: no Authorization header and no client certificate.
	ReasonMissing Reason = "missing_credentials"
	// ReasonMalformed: an Authorization header that is not one
	// "Bearer <token>" (Basic, an empty token, several headers).
	ReasonMalformed Reason = "malformed_credentials"
	// ReasonTooLarge: a token longer than any credential this service
	// issues or verifies; refused before any work is spent on it.
	ReasonTooLarge Reason = "token_too_large"
	// ReasonUnknownToken: not a known API key, and not a JWT (or no JWT
	// issuer is configured).
	ReasonUnknownToken Reason = "unknown_token"
	// ReasonInvalidJWT: a JWT whose signature, algorithm, issuer, audience
	// or not-before time does not verify.
	ReasonInvalidJWT Reason = "invalid_jwt"
	// ReasonExpiredJWT: a JWT past its exp (plus the leeway).
	ReasonExpiredJWT Reason = "expired_jwt"
	// ReasonKeysUnavailable: the issuer's keys could not be fetched, so a
	// JWT could not be verified.
	ReasonKeysUnavailable Reason = "jwks_unavailable"
	// ReasonReservedPrincipal: a JWT subject or certificate subject named
	// system:auditstream, the principal only auditstream's own events
	// carry (SPEC 10).
	ReasonReservedPrincipal Reason = "reserved_principal"
)

// errReservedName refuses a token file or policy that would hand out the
// system's own principal.
var errReservedName = errors.New("the name " + audit.SystemPrincipal + " is reserved for the events auditstream records about itself")

// Error is a refused credential: its Reason, and the underlying cause for
// the log (never for the client, whom it could help probe).
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Reason)
	}
	return fmt.Sprintf("%s: %v", e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(r Reason, err error) *Error { return &Error{Reason: r, Err: err} }
