package audit

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestFieldCheck(t *testing.T) {
	tests := []struct {
		name  string
		field Field
		err   string
	}{
		{"matching", Field{Name: "x", Kind: KindOptText, offset: unsafe.Offsetof(Event{}.Severity)}, ""},
		{"wrong type", Field{Name: "x", Kind: KindText, offset: unsafe.Offsetof(Event{}.Severity)},
			"x: Event.Severity is a *string, kind 1 needs a string"},
		{"no field there", Field{Name: "x", Kind: KindText, offset: 1}, "x: no Event field at offset 1"},
		{"unknown kind", Field{Name: "x", Kind: 99}, "x: unknown kind 99"},
		{"no kind", Field{Name: "x"}, "x: unknown kind 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.field.check(reflectEvent)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
		})
	}
}

func TestFieldAccessorOfAnotherKindPanics(t *testing.T) {
	f := eventFields[0]
	require.Equal(t, KindText, f.Kind)
	var e Event
	require.PanicsWithValue(t, "audit: version: accessor of another kind", func() { f.OptStr(&e) })
}

func TestEventFields(t *testing.T) {
	fields := EventFields()
	names := map[string]bool{}
	for _, f := range fields {
		require.False(t, names[f.Name], "%s twice", f.Name)
		names[f.Name] = true
		if f.Kind == KindEnum && f.Values == nil {
			require.Equal(t, "event_category", f.Name, "only the categories are configured")
		}
	}
	fields[0].Name = "changed"
	require.Equal(t, "version", EventFields()[0].Name, "the caller gets a copy")
}

func TestRequestFieldLookup(t *testing.T) {
	for i, f := range eventFields {
		want := i
		if f.Source != Request {
			want = -1
		}
		require.Equal(t, want, requestField([]byte(f.Name)), f.Name)
	}
	for _, name := range []string{"", "x", "event", "event_ids", "Version", "event_timestamp_", "a_name_longer_than_any_field_name"} {
		require.Equal(t, -1, requestField([]byte(name)), name)
	}
}

func TestAppendStoredJSON(t *testing.T) {
	ts := time.Date(2025, 12, 13, 2, 0, 0, 123000, time.UTC)
	s := func(v string) *string { return &v }
	n := int64(0)
	days := int32(30)
	seq, version := int64(1), int16(1)
	parent := uuid.MustParse("0190b1a2-7c3d-7e4f-8a5b-000000000001")
	full := Event{
		EventID: uuid.MustParse("0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"), Version: "1.0", EventType: "t",
		EventTimestamp: ts, EventDate: time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC),
		EventCategory: "gateway", EventAction: "a", EventOutcome: "success", CorrelationID: `c"1`,
		ActorType: s("at"), ActorID: s("ai"), ResourceType: s("rt"), ResourceID: s("ri"), ParentEventID: &parent,
		Namespace: s(""), ClusterName: s("cn"), Severity: s("sv"), DurationMS: &n,
		ActorIP: netip.MustParseAddr("2001:db8::1"), ClusterID: s("ci"), ErrorCode: s("E1"), ErrorMessage: s("boom"),
		IsSensitive: true, RetentionDays: &days,
		EventData: json.RawMessage(`{"k": [1, 2]}`), SubmittedBy: s("svc-gateway"),
		ChainSeq: &seq, PreviousEventHash: []byte{}, EventHash: []byte{0xab, 0x01}, HashKeyID: s("k1"), HashVersion: &version,
	}
	require.Equal(t, `{"event_id":"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b","version":"1.0","event_type":"t",`+
		`"event_timestamp":"2025-12-13T02:00:00.000123Z","event_date":"2025-12-13","event_category":"gateway",`+
		`"event_action":"a","event_outcome":"success","correlation_id":"c\"1","actor_type":"at","actor_id":"ai",`+
		`"resource_type":"rt","resource_id":"ri","parent_event_id":"0190b1a2-7c3d-7e4f-8a5b-000000000001",`+
		`"namespace":"","cluster_name":"cn","severity":"sv","duration_ms":0,"actor_ip":"2001:db8::1","cluster_id":"ci",`+
		`"error_code":"E1","error_message":"boom","is_sensitive":true,"retention_days":30,"submitted_by":"svc-gateway",`+
		`"chain_seq":1,"previous_event_hash":"","event_hash":"ab01","hash_key_id":"k1","hash_version":1,"event_data":{"k": [1, 2]}}`,
		string(full.AppendStoredJSON([]byte{})))

	bare := Event{EventID: full.EventID, Version: "1", EventType: "t", EventTimestamp: ts, EventDate: full.EventDate,
		EventCategory: "gateway", EventAction: "a", EventOutcome: "failure", CorrelationID: "c"}
	out := bare.AppendStoredJSON([]byte("prefix:"))
	require.Equal(t, `prefix:{"event_id":"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b","version":"1","event_type":"t",`+
		`"event_timestamp":"2025-12-13T02:00:00.000123Z","event_date":"2025-12-13","event_category":"gateway",`+
		`"event_action":"a","event_outcome":"failure","correlation_id":"c","actor_type":null,"actor_id":null,`+
		`"resource_type":null,"resource_id":null,"parent_event_id":null,"namespace":null,"cluster_name":null,`+
		`"severity":null,"duration_ms":null,"actor_ip":null,"cluster_id":null,"error_code":null,"error_message":null,`+
		`"is_sensitive":false,"retention_days":null,"submitted_by":null,"chain_seq":null,"previous_event_hash":null,`+
		`"event_hash":null,"hash_key_id":null,"hash_version":null,"event_data":{}}`, string(out))

	// The record form of the same events leaves out what the database
	// computes, what the writer decides, and what is absent.
	require.NotContains(t, string(full.AppendJSON(nil)), "event_date")
	require.NotContains(t, string(full.AppendJSON(nil)), "submitted_by")
	require.NotContains(t, string(full.AppendJSON(nil)), "hash")
	require.Equal(t, `prefix:{"version":"1","event_type":"t","event_timestamp":"2025-12-13T02:00:00.000123Z",`+
		`"event_category":"gateway","event_action":"a","event_outcome":"failure","correlation_id":"c","event_data":{}}`,
		string((&Event{Version: "1", EventType: "t", EventTimestamp: ts, EventCategory: "gateway", EventAction: "a",
			EventOutcome: "failure", CorrelationID: "c"}).AppendJSON([]byte("prefix:"))))
}

func TestFilterError(t *testing.T) {
	field := func(name string) *Field {
		for i := range eventFields {
			if eventFields[i].Name == name {
				return &eventFields[i]
			}
		}
		t.Fatalf("no field %s", name)
		return nil
	}
	tests := []struct{ field, value, want string }{
		{"event_outcome", "failure", ""},
		{"event_outcome", "maybe", "must be one of: success, failure, pending"},
		{"event_outcome", "Success", "must be one of: success, failure, pending"},
		{"event_category", "billing", ""}, // configured, not fixed
		{"event_type", "anything", ""},
		{"severity", "", ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, field(tc.field).FilterError(tc.value), "%s=%s", tc.field, tc.value)
	}
}
