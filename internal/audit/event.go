package audit

import (
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Event is a validated audit event in canonical form.
type Event struct {
	// EventID is the client's event_id, or uuid.Nil when the record had
	// none: the caller assigns one (NewEventID in the API,
	// DeterministicEventID in the writer).
	EventID        uuid.UUID
	Version        string
	EventType      string
	EventTimestamp time.Time // UTC, truncated to microseconds (PostgreSQL precision)
	EventCategory  string
	EventAction    string
	EventOutcome   string
	CorrelationID  string

	ActorType, ActorID, ResourceType, ResourceID *string
	ParentEventID                                *uuid.UUID
	Namespace, ClusterName, Severity             *string
	DurationMS                                   *int64

	// ActorIP is the zero Addr when absent; IPv4-mapped IPv6 addresses
	// are held as IPv4 (KindOptAddr).
	ActorIP                            netip.Addr
	ClusterID, ErrorCode, ErrorMessage *string
	// IsSensitive is false when the record did not say.
	IsSensitive bool
	// RetentionDays overrides the store's RETENTION_DAYS for this event
	// (MinRetentionDays to MaxRetentionDays).
	RetentionDays *int32

	// EventData is the client's JSON object, compacted but otherwise as
	// given. It does not alias the parsed input.
	EventData json.RawMessage

	// EventDate is the UTC date of EventTimestamp as PostgreSQL derives it
	// (a generated column): set only on events read from the store.
	EventDate time.Time

	// SubmittedBy is who submitted the event (SPEC 8.3): the API's
	// authenticated principal when its signature on the Kafka record
	// verifies, else "kafka:" and the claimed name, or "kafka:unknown".
	// The writer sets it; parsing never does.
	SubmittedBy *string

	// The hash chain (SPEC 9.1): the writer sets these in the batch's
	// transaction (internal/integrity); all nil for events stored without
	// a chain. PreviousEventHash is empty, not nil, for chain_seq 1.
	ChainSeq          *int64
	PreviousEventHash []byte
	EventHash         []byte
	HashKeyID         *string
	HashVersion       *int16
}

// timeLayout formats UTC times with up to microsecond digits; trailing zeros
// are dropped, so whole seconds print as 2025-12-13T02:00:00Z.
const timeLayout = "2006-01-02T15:04:05.999999Z07:00"

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, timeLayout)
	return append(dst, '"')
}

// MarshalJSON returns the canonical Kafka value: AuditEventRequest field
// names, event_id when set, event_timestamp in UTC with up to microsecond
// digits, absent optional fields omitted, event_data raw (an empty EventData
// is written as {}). Parsing the result with the same Rules and acceptance
// time yields an equal Event. Prefer calling it directly (or AppendJSON)
// over json.Marshal, which re-validates the output.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 384+len(e.EventData))), nil
}

// AppendJSON appends the MarshalJSON encoding of e to dst.
func (e *Event) AppendJSON(dst []byte) []byte {
	return e.appendJSON(dst, recordOrder, false)
}

// AppendStoredJSON appends e as reads return it (SPEC 2.5 AuditEvent): every
// field of the table including those PostgreSQL computes, absent ones as
// null, in the order of MarshalJSON. event_data is copied as the database
// returned it (jsonb text has a space after each colon and comma); an
// encoding/json encoder compacts it.
func (e *Event) AppendStoredJSON(dst []byte) []byte {
	return e.appendJSON(dst, storedOrder, true)
}

// appendJSON writes the fields in order; absent ones are omitted, or with
// nulls written as null.
func (e *Event) appendJSON(dst []byte, order []*Field, nulls bool) []byte {
	// Every member is written with a leading comma; the first one's becomes
	// the opening brace.
	open := len(dst)
	for _, f := range order {
		switch f.Kind {
		case KindText, KindEnum:
			dst = appendString(append(dst, f.key...), *f.Str(e))
			continue
		case KindOptText:
			if s := *f.OptStr(e); s != nil {
				dst = appendString(append(dst, f.key...), *s)
				continue
			}
		case KindTimestamp:
			dst = appendTime(append(dst, f.key...), *f.Time(e))
			continue
		case KindDate:
			dst = append(append(dst, f.key...), '"')
			dst = append(f.Time(e).AppendFormat(dst, time.DateOnly), '"')
			continue
		case KindID:
			if id := *f.UUID(e); id != uuid.Nil {
				dst = AppendQuotedUUID(append(dst, f.key...), id)
				continue
			}
		case KindOptUUID:
			if id := *f.OptUUID(e); id != nil {
				dst = AppendQuotedUUID(append(dst, f.key...), *id)
				continue
			}
		case KindOptCount:
			if n := *f.OptInt(e); n != nil {
				dst = strconv.AppendInt(append(dst, f.key...), *n, 10)
				continue
			}
		case KindOptAddr:
			if a := *f.Addr(e); a.IsValid() {
				dst = append(append(dst, f.key...), '"')
				dst = append(a.AppendTo(dst), '"')
				continue
			}
		case KindFlag:
			// false is the default: the record leaves it out, reads
			// say it.
			if *f.Flag(e) || nulls {
				dst = strconv.AppendBool(append(dst, f.key...), *f.Flag(e))
			}
			continue
		case KindOptInt:
			if n := *f.OptInt32(e); n != nil {
				dst = strconv.AppendInt(append(dst, f.key...), int64(*n), 10)
				continue
			}
		case KindOptHash:
			if b := *f.Bytes(e); b != nil {
				dst = append(append(dst, f.key...), '"')
				dst = hex.AppendEncode(dst, b)
				dst = append(dst, '"')
				continue
			}
		case KindOptSmallInt:
			if n := *f.OptSmallInt(e); n != nil {
				dst = strconv.AppendInt(append(dst, f.key...), int64(*n), 10)
				continue
			}
		case KindObject:
			dst = append(dst, f.key...)
			if raw := *f.Raw(e); len(raw) > 0 {
				dst = append(dst, raw...)
			} else {
				dst = append(dst, "{}"...)
			}
			continue
		default:
			panic("audit: " + f.Name + ": the encoder has no rule for its kind")
		}
		// e has no value for f.
		if nulls {
			dst = append(append(dst, f.key...), "null"...)
		}
	}
	if len(dst) == open {
		return append(dst, "{}"...)
	}
	dst[open] = '{'
	return append(dst, '}')
}

// AppendQuotedUUID appends id as a JSON string in its canonical form,
// without allocating.
func AppendQuotedUUID(dst []byte, id uuid.UUID) []byte {
	var buf [38]byte
	// uuid.UUID.MarshalText cannot fail; encode without allocating.
	const hex = hexDigits
	buf[0], buf[37] = '"', '"'
	j := 1
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j] = hex[b>>4]
		buf[j+1] = hex[b&0xf]
		j += 2
	}
	return append(dst, buf[:]...)
}
