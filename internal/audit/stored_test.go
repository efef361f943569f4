package audit_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
)

// everyField returns an event with a value in every field of the table,
// set by kind, so that a field added later is covered too.
func everyField(t *testing.T) audit.Event {
	t.Helper()
	var e audit.Event
	for i, f := range audit.EventFields() {
		s := fmt.Sprintf("v%d \"é\"\n", i)
		switch f.Kind {
		case audit.KindText, audit.KindEnum:
			*f.Str(&e) = s
		case audit.KindOptText:
			*f.OptStr(&e) = &s
		case audit.KindTimestamp:
			*f.Time(&e) = time.Date(2025, 12, 13, 2, 0, 0, 123456000, time.UTC)
		case audit.KindDate:
			*f.Time(&e) = time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)
		case audit.KindID:
			*f.UUID(&e) = uuid.New()
		case audit.KindOptUUID:
			id := uuid.New()
			*f.OptUUID(&e) = &id
		case audit.KindOptCount:
			n := int64(1<<40 + i)
			*f.OptInt(&e) = &n
		case audit.KindOptSmallInt:
			n := int16(i)
			*f.OptSmallInt(&e) = &n
		case audit.KindOptInt:
			n := int32(1<<20 + i)
			*f.OptInt32(&e) = &n
		case audit.KindOptAddr:
			*f.Addr(&e) = netip.MustParseAddr("2001:db8::1")
		case audit.KindFlag:
			*f.Flag(&e) = true
		case audit.KindOptHash:
			*f.Bytes(&e) = []byte{byte(i), 0xff}
		case audit.KindObject:
			*f.Raw(&e) = json.RawMessage(`{"a": [1, 2.50, "x"], "b": {"c": null}}`)
		default:
			t.Fatalf("%s: the test has no value for kind %d", f.Name, f.Kind)
		}
	}
	return e
}

// TestParseStoredEventRoundTrip: what reads and exports write is read back
// as the same event, nulls as absent values and an empty hash as empty.
func TestParseStoredEventRoundTrip(t *testing.T) {
	full := everyField(t)
	sparse := audit.Event{
		EventID: uuid.New(), Version: "1", EventType: "t", EventTimestamp: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
		EventCategory: "gateway", EventAction: "a", EventOutcome: "success", CorrelationID: "c",
		EventData: json.RawMessage(`{}`), EventDate: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
		PreviousEventHash: []byte{},
	}
	for name, e := range map[string]audit.Event{"every field": full, "required fields only": sparse} {
		t.Run(name, func(t *testing.T) {
			raw := e.AppendStoredJSON(nil)
			got, err := audit.ParseStoredEvent(raw)
			require.NoError(t, err)
			require.Equal(t, e, got)
			require.Equal(t, string(raw), string(got.AppendStoredJSON(nil)), "written back byte for byte")
		})
	}
}

func TestParseStoredEventRefuses(t *testing.T) {
	e := everyField(t)
	good := string(e.AppendStoredJSON(nil))
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"not JSON", `{"event_id":`, "not a JSON object"},
		{"an array", `[]`, "not a JSON object"},
		{"an unknown member", good[:len(good)-1] + `,"hash_chain_valid":true}`, `unknown member "hash_chain_valid"`},
		{"a member twice", good[:len(good)-1] + `,"version":"2"}`, "given twice"},
		{"a number as a string", `{"version":1}`, "version: not a string"},
		{"a bad timestamp", `{"event_timestamp":"yesterday"}`, "event_timestamp"},
		{"a bad hash", `{"event_hash":"xyz"}`, "event_hash"},
		{"event_data not an object", `{"event_data":[1]}`, "event_data: not an object"},
		{"a bad uuid", `{"event_id":"42"}`, "event_id"},
		{"a fraction", `{"chain_seq":1.5}`, "chain_seq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.ParseStoredEvent([]byte(tc.raw))
			require.ErrorIs(t, err, audit.ErrStored)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
