package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
)

// Event outcomes (event_outcome).
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomePending = "pending"
)

// Event categories (event_category) a server with the default settings
// accepts. A server may allow others (EVENT_CATEGORIES); tell the client
// with [WithCategories].
const (
	CategoryGateway          = "gateway"
	CategoryNotification     = "notification"
	CategoryAnalysis         = "analysis"
	CategorySignalProcessing = "signalprocessing"
	CategoryWorkflow         = "workflow"
	CategoryExecution        = "execution"
	CategoryOrchestration    = "orchestration"
)

// Event is one audit event, the AuditEventRequest of the HTTP API. The
// fields without omitempty or omitzero are required. Optional fields are pointers: nil
// means absent (stored as null), which is not the same as an empty string.
// Go 1.26's new(expr) makes them one expression: Severity: new("high").
type Event struct {
	// EventID makes retries idempotent end to end: the writer stores an
	// event_id once, however often it is delivered. Leave it zero and
	// [Client.Send] assigns a UUIDv7 before the first attempt.
	EventID uuid.UUID `json:"event_id,omitzero"`

	Version   string `json:"version"`    // 1–20 characters
	EventType string `json:"event_type"` // 1–100 characters
	// EventTimestamp is when it happened; zero means the time of Send. The
	// server stores it in UTC with microsecond precision and rejects it
	// if it lies more than 5 minutes (MAX_FUTURE_SKEW) in its future.
	EventTimestamp time.Time `json:"event_timestamp,omitzero"`
	EventCategory  string    `json:"event_category"` // one of the Category constants
	EventAction    string    `json:"event_action"`   // 1–50 characters
	EventOutcome   string    `json:"event_outcome"`  // one of the Outcome constants
	CorrelationID  string    `json:"correlation_id"` // 1–255 characters
	// EventData is what happened in detail: anything encoding/json turns
	// into a JSON object (a map, a struct, a json.RawMessage), at most
	// 64 KiB once compacted; {} is allowed, nil is not. Like json.Marshal,
	// Send replaces invalid UTF-8 inside it with U+FFFD; a json.RawMessage
	// is passed on as is and checked like the server checks it.
	EventData any `json:"event_data,omitempty"`

	ActorType     *string    `json:"actor_type,omitempty"`    // ≤ 255 characters
	ActorID       *string    `json:"actor_id,omitempty"`      // ≤ 255 characters
	ResourceType  *string    `json:"resource_type,omitempty"` // ≤ 255 characters
	ResourceID    *string    `json:"resource_id,omitempty"`   // ≤ 255 characters
	ParentEventID *uuid.UUID `json:"parent_event_id,omitempty"`
	Namespace     *string    `json:"namespace,omitempty"`    // ≤ 255 characters
	ClusterName   *string    `json:"cluster_name,omitempty"` // ≤ 255 characters
	Severity      *string    `json:"severity,omitempty"`     // ≤ 50 characters
	DurationMS    *int64     `json:"duration_ms,omitempty"`  // ≥ 0

	// ActorIP is an IPv4 or IPv6 address, stored as the server's
	// canonical text (an IPv4-mapped IPv6 address as its IPv4 address).
	ActorIP      *string `json:"actor_ip,omitempty"`
	ClusterID    *string `json:"cluster_id,omitempty"`    // ≤ 255 characters
	ErrorCode    *string `json:"error_code,omitempty"`    // ≤ 100 characters
	ErrorMessage *string `json:"error_message,omitempty"` // ≤ 2000 characters
	// IsSensitive marks the event as holding sensitive data (false when
	// left out).
	IsSensitive bool `json:"is_sensitive,omitempty"`
	// RetentionDays keeps the event this many days (1–2555) instead of the
	// server's RETENTION_DAYS; nil keeps the server's.
	RetentionDays *int `json:"retention_days,omitempty"`
}

// FieldError is one rejected field.
type FieldError struct {
	// Field is the JSON field name, e.g. "event_type".
	Field string
	// Reason is the server's stable code: required, type, empty, too_long,
	// enum, format, future, range, too_large, nul, utf8, reserved.
	Reason string
	// Message is for the developer, e.g. "must not be empty".
	Message string
}

// ValidationError is what Send returns for an event the server would
// reject with 400: every rejected field, checked by the same code the
// server runs. Use errors.As to get it.
type ValidationError struct {
	// Errors lists every rejected field: first those encoding/json
	// would have altered (invalid UTF-8, years past 9999), then in the
	// order of the API's field table.
	Errors []FieldError
}

// Fields returns field → message, as the server's field_errors object.
func (e *ValidationError) Fields() map[string]string {
	m := make(map[string]string, len(e.Errors))
	for _, fe := range e.Errors {
		m[fe.Field] = fe.Message
	}
	return m
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("auditstream: invalid event: ")
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Field + ": " + fe.Message)
	}
	return b.String()
}

// encoder validates events with the server's rules and turns them into the
// JSON the server parses, so a valid event cannot be rejected for its form.
type encoder struct {
	rules audit.Rules
	now   func() time.Time
}

// encode checks ev and returns its event id and its canonical JSON, with
// the event id and timestamp filled in when ev leaves them zero.
func (e *encoder) encode(ev Event) (uuid.UUID, []byte, error) {
	now := e.now()
	if ev.EventID == uuid.Nil {
		ev.EventID = audit.NewEventID()
	}
	if ev.EventTimestamp.IsZero() {
		ev.EventTimestamp = now
	}
	pre := invalidStrings([]namedString{
		{"version", &ev.Version}, {"event_type", &ev.EventType}, {"event_category", &ev.EventCategory},
		{"event_action", &ev.EventAction}, {"event_outcome", &ev.EventOutcome}, {"correlation_id", &ev.CorrelationID},
		{"actor_type", ev.ActorType}, {"actor_id", ev.ActorID}, {"resource_type", ev.ResourceType},
		{"resource_id", ev.ResourceID}, {"namespace", ev.Namespace}, {"cluster_name", ev.ClusterName},
		{"severity", ev.Severity}, {"actor_ip", ev.ActorIP}, {"cluster_id", ev.ClusterID}, {"error_code", ev.ErrorCode},
		{"error_message", ev.ErrorMessage},
	})
	pre = append(pre, invalidTime("event_timestamp", &ev.EventTimestamp, now)...)
	raw, err := json.Marshal(ev)
	if err != nil {
		// Every other field has a type that always encodes.
		return uuid.Nil, nil, &ValidationError{Errors: []FieldError{{
			Field: "event_data", Reason: audit.ReasonType, Message: "cannot be encoded as JSON: " + err.Error(),
		}}}
	}
	parsed, err := e.rules.ParseEvent(raw, now)
	if err := validationError(pre, err); err != nil {
		return uuid.Nil, nil, err
	}
	return parsed.EventID, parsed.AppendJSON(nil), nil
}

// validationError is the error of a record whose server-side parse ended
// with err: pre (the fields encoding/json would have altered) first, then
// the parser's field errors.
func validationError(pre []FieldError, err error) error {
	var fe audit.FieldErrors
	switch {
	case errors.As(err, &fe):
		errs := pre
		for _, f := range fe {
			if !slices.ContainsFunc(pre, func(p FieldError) bool { return p.Field == f.Field }) {
				errs = append(errs, FieldError(f))
			}
		}
		return &ValidationError{Errors: errs}
	case err != nil:
		// json.Marshal wrote the document: a body-level problem here
		// is a bug, not the caller's mistake.
		return fmt.Errorf("auditstream: encode: %w", err)
	case len(pre) > 0:
		return &ValidationError{Errors: pre}
	}
	return nil
}

type namedString struct {
	name string
	v    *string // nil: absent
}

// invalidStrings reports the fields with invalid UTF-8, which encoding/json
// would silently turn into U+FFFD.
func invalidStrings(fields []namedString) []FieldError {
	var errs []FieldError
	for _, f := range fields {
		if f.v != nil && !utf8.ValidString(*f.v) {
			errs = append(errs, FieldError{Field: f.name, Reason: audit.ReasonUTF8, Message: "must be valid UTF-8"})
		}
	}
	return errs
}

// invalidTime reports a time outside years 0001–9999, which encoding/json
// refuses to encode; it is replaced by now so that the other fields are
// still checked.
func invalidTime(name string, t *time.Time, now time.Time) []FieldError {
	if y := t.UTC().Year(); y >= 1 && y <= 9999 {
		return nil
	}
	*t = now
	return []FieldError{{Field: name, Reason: audit.ReasonRange, Message: "must be between years 0001 and 9999 in UTC"}}
}
