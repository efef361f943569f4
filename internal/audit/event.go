package audit

import (
	"encoding/json"
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

	// EventData is the client's JSON object, compacted but otherwise as
	// given. It does not alias the parsed input.
	EventData json.RawMessage
}

// timeLayout formats UTC times with up to microsecond digits; trailing zeros
// are dropped, so whole seconds print as 2025-12-13T02:00:00Z.
const timeLayout = "2006-01-02T15:04:05.999999Z07:00"

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, timeLayout)
	return append(dst, '"')
}

// EventDate returns the UTC date of EventTimestamp as YYYY-MM-DD.
func (e *Event) EventDate() string {
	return e.EventTimestamp.UTC().Format(time.DateOnly)
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
	dst = append(dst, '{')
	if e.EventID != uuid.Nil {
		dst = append(dst, `"event_id":"`...)
		dst = appendUUID(dst, e.EventID)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"version":`...)
	dst = appendString(dst, e.Version)
	dst = append(dst, `,"event_type":`...)
	dst = appendString(dst, e.EventType)
	dst = append(dst, `,"event_timestamp":`...)
	dst = appendTime(dst, e.EventTimestamp)
	dst = append(dst, `,"event_category":`...)
	dst = appendString(dst, e.EventCategory)
	dst = append(dst, `,"event_action":`...)
	dst = appendString(dst, e.EventAction)
	dst = append(dst, `,"event_outcome":`...)
	dst = appendString(dst, e.EventOutcome)
	dst = append(dst, `,"correlation_id":`...)
	dst = appendString(dst, e.CorrelationID)
	dst = appendOptString(dst, `,"actor_type":`, e.ActorType)
	dst = appendOptString(dst, `,"actor_id":`, e.ActorID)
	dst = appendOptString(dst, `,"resource_type":`, e.ResourceType)
	dst = appendOptString(dst, `,"resource_id":`, e.ResourceID)
	if e.ParentEventID != nil {
		dst = append(dst, `,"parent_event_id":"`...)
		dst = appendUUID(dst, *e.ParentEventID)
		dst = append(dst, '"')
	}
	dst = appendOptString(dst, `,"namespace":`, e.Namespace)
	dst = appendOptString(dst, `,"cluster_name":`, e.ClusterName)
	dst = appendOptString(dst, `,"severity":`, e.Severity)
	if e.DurationMS != nil {
		dst = append(dst, `,"duration_ms":`...)
		dst = strconv.AppendInt(dst, *e.DurationMS, 10)
	}
	dst = append(dst, `,"event_data":`...)
	if len(e.EventData) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, e.EventData...)
	}
	return append(dst, '}')
}

func appendOptString(dst []byte, prefix string, s *string) []byte {
	if s == nil {
		return dst
	}
	dst = append(dst, prefix...)
	return appendString(dst, *s)
}

func appendUUID(dst []byte, id uuid.UUID) []byte {
	var buf [36]byte
	// uuid.UUID.MarshalText cannot fail; encode without allocating.
	const hex = hexDigits
	j := 0
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
