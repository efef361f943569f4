// Package audit defines the audit event and notification types of the
// pipeline, the validation rules shared by the HTTP API and the Kafka writer,
// and event id derivation. It performs no I/O.
//
// # Fields
//
// [EventFields] is the event's field table, the one description of its
// fields: the parser, the encoders ([Event.AppendJSON] for the Kafka record,
// [Event.AppendStoredJSON] for reads), the store's COPY and the queries are
// driven by it, one rule per [Kind]. Notifications, a smaller schema with a
// staging-table insert of their own, are written out by hand.
//
// # Validation
//
// [Rules.ParseEvent], [Rules.ParseEventBatch] and [Rules.ParseNotification]
// decode a JSON document once, validate every known field from its raw bytes
// and return either the canonical value or an error:
//
//   - [FieldErrors]: one [FieldError] per rejected field, every field reported,
//     in a fixed order (the order of the SPEC's field tables; in a batch by
//     element index, then field). In a batch the field is named "[i].field".
//   - [*BodyError]: the document as a whole is unusable. It wraps one of the
//     sentinels [ErrMalformed], [ErrNotObject], [ErrNotArray], [ErrInvalidUTF8],
//     [ErrNUL], [ErrEmptyBatch], [ErrBatchTooLarge] (use errors.Is).
//
// Decisions that callers should know:
//
//   - Field names are matched exactly (case-sensitive); unknown fields are
//     ignored, but their content must still be valid UTF-8 without NUL (SPEC
//     2.1 "anywhere in the body"), else a [*BodyError].
//   - A JSON null for an optional field means absent; for a required field
//     it is reported as "required".
//   - If a known field appears twice the last occurrence wins (as with
//     encoding/json and PostgreSQL jsonb); the earlier one is checked like an
//     unknown field.
//   - Strings are stored as given: no trimming. Empty strings are rejected for
//     required fields and accepted for optional ones. Lengths count Unicode
//     code points, like PostgreSQL varchar(n).
//   - Integers must be written as JSON integers (5, not 5.0 or 5e0).
//   - UUIDs must use the 36-character hyphenated form (any letter case).
//   - Date-times are RFC 3339 with an offset of at most ±23:59; seconds are
//     optional, lowercase "t"/"z" are accepted, a comma as decimal separator
//     is not. They are converted to UTC, truncated to microseconds, and must
//     fall within years 0001–9999 in UTC. A leap second (23:59:60 UTC on
//     the last day of a month) is read as 23:59:59.999999 ([ParseDateTime]).
//   - Numbers in event_data must fit PostgreSQL's numeric, which jsonb
//     stores them as: at most 131072 digits before the decimal point and
//     16383 after.
//
// # Reason codes
//
// [FieldError.Reason] is a short, stable code, meant as a metrics label
// (datastorage_validation_failures_total{field,reason}):
//
//	required   field missing or null
//	type       wrong JSON type (also a non-integer number for an integer field)
//	empty      empty string where at least one character is required
//	too_long   string longer than the column allows (in characters)
//	enum       value outside the allowed set
//	format     malformed UUID or date-time
//	future     date-time more than Rules.MaxFutureSkew after acceptance
//	range      integer or date-time outside the allowed range, or a number
//	           in event_data that PostgreSQL's numeric cannot hold
//	too_large  event_data larger than Rules.MaxEventDataBytes once compacted
//	nul        contains a NUL character (the \u0000 escape)
//	utf8       invalid UTF-8, or an unpaired UTF-16 surrogate escape
//	reserved   event_category auditstream, which only auditstream itself
//	           may use (SystemCategory)
//	duplicate  an event_id carried by two elements of one batch
//
// [BodyError.Reason] gives a code for body-level problems: malformed,
// not_object, not_array, utf8, nul, empty_batch, batch_too_large.
package audit
