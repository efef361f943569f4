package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/auth"
)

// problemBase prefixes every problem type. The URIs are stable identifiers
// listed in the README, not pages to fetch.
const problemBase = "https://auditstream.dev/problems/"

// problemKind is one kind of RFC 7807 problem the API answers with.
type problemKind struct {
	slug   string
	title  string
	status int
}

var (
	probValidation = problemKind{"validation-error", "Validation failed", http.StatusBadRequest}
	probMalformed  = problemKind{"malformed-request", "Malformed request", http.StatusBadRequest}
	probTooLarge   = problemKind{"payload-too-large", "Payload too large", http.StatusRequestEntityTooLarge}
	probMediaType  = problemKind{"unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType}
	probDuplicate  = problemKind{"duplicate-notification", "Notification already recorded", http.StatusConflict}
	probKafka      = problemKind{"kafka-unavailable", "Kafka unavailable", http.StatusServiceUnavailable}
	// The local spool (SPOOL_DIR) would have taken what Kafka could not.
	probSpoolFull        = problemKind{"spool-full", "Kafka unavailable and the local spool full", http.StatusServiceUnavailable}
	probSpoolUnavailable = problemKind{"spool-unavailable", "Kafka unavailable and the local spool not writable", http.StatusServiceUnavailable}
	probNotFound         = problemKind{"not-found", "Not found", http.StatusNotFound}
	probMethod           = problemKind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	probInternal         = problemKind{"internal-error", "Internal server error", http.StatusInternalServerError}
	probQueryParam       = problemKind{"invalid-query-parameter", "Invalid query parameter", http.StatusBadRequest}
	probDatabase         = problemKind{"database-unavailable", "Database unavailable", http.StatusServiceUnavailable}
	probIntegrity        = problemKind{"integrity-not-configured", "Integrity not configured", http.StatusServiceUnavailable}
	probExportBusy       = problemKind{"export-busy", "Too many exports", http.StatusServiceUnavailable}
	probHeld             = problemKind{"legal-hold-exists", "Legal hold already in force", http.StatusConflict}

	probUnauthenticated = problemKind{"unauthenticated", "Unauthenticated", http.StatusUnauthorized}
	probForbidden       = problemKind{"forbidden", "Forbidden", http.StatusForbidden}
	probRateLimited     = problemKind{"rate-limited", "Too many requests", http.StatusTooManyRequests}
)

// Problem is an RFC 7807 problem document with auditstream's extensions.
type Problem struct {
	Type        string            `json:"type"`
	Title       string            `json:"title"`
	Status      int               `json:"status"`
	Detail      string            `json:"detail"`
	Instance    string            `json:"instance"`
	FieldErrors map[string]string `json:"field_errors,omitempty"`
	// EventIDs lists the ids of a request answered 503, so a client that
	// retries with them stays idempotent even when some records did land.
	EventIDs []uuid.UUID `json:"event_ids,omitempty"`
	// RequiredScope names the scope a 403 lacked.
	RequiredScope string `json:"required_scope,omitempty"`
	// RequestID ties the answer to the access log line.
	RequestID string `json:"request_id,omitempty"`
}

// problemOption adds an extension member to a problem.
type problemOption func(*Problem)

func withFieldErrors(fe map[string]string) problemOption {
	return func(p *Problem) { p.FieldErrors = fe }
}

func withEventIDs(ids []uuid.UUID) problemOption {
	return func(p *Problem) { p.EventIDs = ids }
}

func withRequiredScope(s auth.Scope) problemOption {
	return func(p *Problem) { p.RequiredScope = string(s) }
}

// abortProblem answers with the problem and stops the handler chain.
func abortProblem(c *gin.Context, kind problemKind, detail string, opts ...problemOption) {
	p := Problem{
		Type:      problemBase + kind.slug,
		Title:     kind.title,
		Status:    kind.status,
		Detail:    detail,
		Instance:  c.Request.URL.Path,
		RequestID: c.GetString(requestIDKey),
	}
	for _, o := range opts {
		o(&p)
	}
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(kind.status, p)
}
