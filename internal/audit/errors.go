package audit

import (
	"errors"
	"strconv"
	"strings"
)

// Reason codes of a FieldError. See the package documentation.
const (
	ReasonRequired = "required"
	ReasonType     = "type"
	ReasonEmpty    = "empty"
	ReasonTooLong  = "too_long"
	ReasonEnum     = "enum"
	ReasonFormat   = "format"
	ReasonFuture   = "future"
	ReasonRange    = "range"
	ReasonTooLarge = "too_large"
	ReasonNUL      = "nul"
	ReasonUTF8     = "utf8"
	ReasonReserved = "reserved"
	// ReasonDuplicate: a batch carries the same event_id more than once.
	ReasonDuplicate = "duplicate"
)

// FieldError is one rejected field.
type FieldError struct {
	// Field is the JSON field name; in a batch it is prefixed with the
	// element index: "[3].event_type". A batch element that is not an object
	// is reported with Field "[3]".
	Field string
	// Reason is a stable machine code (see the Reason constants).
	Reason string
	// Message is for the client developer, e.g. "must not be empty".
	Message string
}

// Name returns the field name without a batch index prefix, for use as a
// metrics label: "[3].event_type" -> "event_type". For a batch element that
// is not an object ("[3]") it returns "element".
func (e FieldError) Name() string {
	if len(e.Field) == 0 || e.Field[0] != '[' {
		return e.Field
	}
	i := strings.IndexByte(e.Field, ']')
	if i < 0 {
		return e.Field
	}
	rest := e.Field[i+1:]
	if rest == "" {
		return "element"
	}
	return strings.TrimPrefix(rest, ".")
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors lists every rejected field of a record or batch, in a stable
// order. It is returned as a value: use errors.As(err, &fieldErrs).
type FieldErrors []FieldError

func (fe FieldErrors) Error() string {
	var b strings.Builder
	b.WriteString("validation failed: ")
	for i, e := range fe {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Field)
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Map returns field -> message, the RFC 7807 "field_errors" object.
func (fe FieldErrors) Map() map[string]string {
	m := make(map[string]string, len(fe))
	for _, e := range fe {
		m[e.Field] = e.Message
	}
	return m
}

// Sentinels wrapped by BodyError; match them with errors.Is.
var (
	// ErrMalformed: not JSON, truncated JSON or an empty body.
	ErrMalformed = errors.New("malformed JSON")
	// ErrNotObject: the top-level value is not a JSON object.
	ErrNotObject = errors.New("JSON object expected")
	// ErrNotArray: the top-level value of a batch is not a JSON array.
	ErrNotArray = errors.New("JSON array expected")
	// ErrInvalidUTF8: invalid UTF-8 or an unpaired UTF-16 surrogate escape
	// outside any known field (in a key or an unknown field).
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrNUL: a NUL character (\u0000) outside any known field.
	ErrNUL = errors.New("NUL character")
	// ErrEmptyBatch: a batch with no element.
	ErrEmptyBatch = errors.New("empty batch")
	// ErrBatchTooLarge: a batch with more elements than ParseEventBatch's
	// limit.
	ErrBatchTooLarge = errors.New("batch too large")
)

// BodyError is a problem with the document as a whole. Err is one of the
// sentinels above; Detail is a message for the client developer.
type BodyError struct {
	Err    error
	Detail string
}

func (e *BodyError) Error() string { return e.Detail }
func (e *BodyError) Unwrap() error { return e.Err }

// Reason returns a stable code for metrics: malformed, not_object, not_array,
// utf8, nul, empty_batch, batch_too_large (or "body" for anything else).
func (e *BodyError) Reason() string {
	switch e.Err {
	case ErrMalformed:
		return "malformed"
	case ErrNotObject:
		return "not_object"
	case ErrNotArray:
		return "not_array"
	case ErrInvalidUTF8:
		return "utf8"
	case ErrNUL:
		return "nul"
	case ErrEmptyBatch:
		return "empty_batch"
	case ErrBatchTooLarge:
		return "batch_too_large"
	}
	return "body"
}

func bodyErr(sentinel error, detail string) *BodyError {
	return &BodyError{Err: sentinel, Detail: detail}
}

// Client-facing messages.
const (
	msgRequired   = "is required"
	msgString     = "must be a string"
	msgEmpty      = "must not be empty"
	msgObject     = "must be a JSON object"
	msgUUID       = "must be a UUID"
	msgNilUUID    = "must not be the nil UUID"
	msgDateTime   = "must be an RFC 3339 date-time with a UTC offset, e.g. 2025-12-13T02:00:00Z"
	msgYearRange  = "must be between years 0001 and 9999 in UTC"
	msgNUL        = "must not contain NUL characters"
	msgUTF8       = "must be valid UTF-8"
	msgSurrogate  = "must not contain unpaired UTF-16 surrogate escapes"
	msgIntNonNeg  = "must be an integer >= 0"
	msgIntInt64   = "must be an integer between 0 and 9223372036854775807"
	msgIDPositive = "must be an integer > 0"
	msgAddr       = "must be an IPv4 or IPv6 address without zone, e.g. 192.0.2.10 or 2001:db8::10"
	msgBool       = "must be true or false"
	msgReserved   = "auditstream is reserved for the events auditstream records about itself"
	// msgNumberRange: jsonb stores numbers as numeric (see number.go).
	msgNumberRange = "must not contain a number PostgreSQL cannot store (at most 131072 digits before the decimal point and 16383 after)"
)

func msgDuplicateID(other int) string {
	return "is the same as [" + strconv.Itoa(other) + "].event_id; event_ids in a batch must be distinct"
}

func msgTooLong(n int) string { return "must be at most " + strconv.Itoa(n) + " characters" }

func msgEnum(allowed []string) string { return "must be one of: " + strings.Join(allowed, ", ") }
