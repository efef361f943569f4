package client_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/client"
)

// validEvent is the smallest event the server accepts.
func validEvent() client.Event {
	return client.Event{
		Version:       "1.0",
		EventType:     "workflow.step.finished",
		EventCategory: client.CategoryWorkflow,
		EventAction:   "finished",
		EventOutcome:  client.OutcomeSuccess,
		CorrelationID: "rr-2025-001",
		EventData:     map[string]any{"step": 1},
	}
}

// TestSendValidates checks that Send refuses what the server would refuse,
// with the server's field names and messages, and buffers nothing then.
func TestSendValidates(t *testing.T) {
	tests := []struct {
		name   string
		opts   []client.Option
		modify func(*client.Event)
		want   map[string]string // nil: valid
	}{
		{name: "minimal", modify: func(*client.Event) {}},
		{name: "every optional field", modify: func(e *client.Event) {
			parent := uuid.New()
			e.EventID = uuid.New()
			e.EventTimestamp = time.Date(2025, 12, 13, 2, 0, 0, 0, time.UTC)
			e.ActorType, e.ActorID = new("service"), new("gateway")
			e.ResourceType, e.ResourceID = new("Signal"), new("fp-abc123")
			e.ParentEventID = &parent
			e.Namespace, e.ClusterName, e.Severity = new("prod"), new("eu-1"), new("")
			e.DurationMS = new(int64(0))
			e.ActorIP, e.ClusterID = new("::ffff:192.0.2.1"), new("c-uid")
			e.ErrorCode, e.ErrorMessage = new("E1"), new("boom")
			e.IsSensitive, e.RetentionDays = true, new(30)
			e.EventData = json.RawMessage(`{"a": [1, 2]}`)
		}},
		{name: "the newer fields' bad input", modify: func(e *client.Event) {
			e.ActorIP = new("999.1.1.1")
			e.ErrorCode = new(strings.Repeat("e", 101))
			e.RetentionDays = new(2556)
		}, want: map[string]string{
			"actor_ip":       "must be an IPv4 or IPv6 address without zone, e.g. 192.0.2.10 or 2001:db8::10",
			"error_code":     "must be at most 100 characters",
			"retention_days": "must be an integer between 1 and 2555",
		}},
		{name: "the reserved category", modify: func(e *client.Event) { e.EventCategory = "auditstream" },
			want: map[string]string{"event_category": "auditstream is reserved for the events auditstream records about itself"}},
		{name: "required fields missing", modify: func(e *client.Event) { *e = client.Event{} }, want: map[string]string{
			"version":        "must not be empty",
			"event_type":     "must not be empty",
			"event_category": "must be one of: gateway, notification, analysis, signalprocessing, workflow, execution, orchestration",
			"event_action":   "must not be empty",
			"event_outcome":  "must be one of: success, failure, pending",
			"correlation_id": "must not be empty",
			"event_data":     "is required",
		}},
		{name: "too long and out of range", modify: func(e *client.Event) {
			e.Version = strings.Repeat("v", 21)
			e.Severity = new(strings.Repeat("s", 51))
			e.DurationMS = new(int64(-1))
		}, want: map[string]string{
			"version":     "must be at most 20 characters",
			"severity":    "must be at most 50 characters",
			"duration_ms": "must be an integer >= 0",
		}},
		{name: "event_data not an object", modify: func(e *client.Event) { e.EventData = []int{1} },
			want: map[string]string{"event_data": "must be a JSON object"}},
		{name: "event_data too large", modify: func(e *client.Event) {
			e.EventData = map[string]string{"x": strings.Repeat("x", 64<<10)}
		}, want: map[string]string{"event_data": "must be at most 65536 bytes when serialized"}},
		{name: "event_data with NUL", modify: func(e *client.Event) { e.EventData = map[string]string{"x": "a\x00b"} },
			want: map[string]string{"event_data": "must not contain NUL characters"}},
		{name: "event_data not encodable", modify: func(e *client.Event) { e.EventData = map[string]any{"c": make(chan int)} },
			want: map[string]string{"event_data": "cannot be encoded as JSON: json: unsupported type: chan int"}},
		{name: "invalid UTF-8 is not replaced", modify: func(e *client.Event) {
			e.EventType = "bad\xff"
			e.ActorID = new("\xfe")
			e.EventAction = ""
		}, want: map[string]string{
			"event_type":   "must be valid UTF-8",
			"actor_id":     "must be valid UTF-8",
			"event_action": "must not be empty",
		}},
		{name: "timestamp too far ahead", modify: func(e *client.Event) { e.EventTimestamp = time.Now().Add(6 * time.Minute) },
			want: map[string]string{"event_timestamp": "must not be more than 5m0s in the future"}},
		{name: "timestamp beyond year 9999", modify: func(e *client.Event) {
			e.EventTimestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			e.EventOutcome = "maybe"
		}, want: map[string]string{
			"event_timestamp": "must be between years 0001 and 9999 in UTC",
			"event_outcome":   "must be one of: success, failure, pending",
		}},
		{name: "server's other settings", opts: []client.Option{
			client.WithCategories("billing"), client.WithMaxEventDataBytes(16), client.WithMaxFutureSkew(time.Hour),
		}, modify: func(e *client.Event) {
			e.EventCategory = "billing"
			e.EventTimestamp = time.Now().Add(30 * time.Minute)
			e.EventData = map[string]string{"long": "more than sixteen bytes"}
		}, want: map[string]string{"event_data": "must be at most 16 bytes when serialized"}},
		{name: "category outside the server's list", opts: []client.Option{client.WithCategories("billing")},
			modify: func(*client.Event) {}, want: map[string]string{"event_category": "must be one of: billing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			c := api.client(t, tt.opts...)
			ev := validEvent()
			tt.modify(&ev)
			err := c.Send(t.Context(), ev)
			if tt.want == nil {
				require.NoError(t, err)
				require.NoError(t, c.Flush(t.Context()))
				require.Len(t, api.events(), 1)
				return
			}
			var verr *client.ValidationError
			require.ErrorAs(t, err, &verr)
			require.Equal(t, tt.want, verr.Fields())
			require.Zero(t, c.Pending(), "a refused event is not buffered")
		})
	}
}

// TestSendFillsIDAndTimestamp checks what Send adds to an event: a UUIDv7
// when it has no id (and keeps the caller's), the time of Send when it has
// no timestamp, and the server's canonical form for the rest.
func TestSendFillsIDAndTimestamp(t *testing.T) {
	api := newFakeAPI(t)
	c := api.client(t)
	own := uuid.New()
	withID := validEvent()
	withID.EventID = own
	withID.EventTimestamp = time.Date(2025, 12, 13, 3, 0, 0, 123456789, time.FixedZone("CET", 3600))
	before := time.Now().UTC().Truncate(time.Microsecond)
	require.NoError(t, c.Send(t.Context(), validEvent()))
	require.NoError(t, c.Send(t.Context(), withID))
	require.NoError(t, c.Flush(t.Context()))
	after := time.Now()

	got := api.events()
	require.Len(t, got, 2)
	var first, second struct {
		EventID        uuid.UUID       `json:"event_id"`
		EventTimestamp time.Time       `json:"event_timestamp"`
		EventData      json.RawMessage `json:"event_data"`
	}
	require.NoError(t, json.Unmarshal(got[0], &first))
	require.NoError(t, json.Unmarshal(got[1], &second))
	require.Equal(t, uuid.Version(7), first.EventID.Version())
	require.False(t, first.EventTimestamp.Before(before), "timestamp %s not before Send", first.EventTimestamp)
	require.False(t, first.EventTimestamp.After(after))
	require.JSONEq(t, `{"step":1}`, string(first.EventData))
	require.Equal(t, own, second.EventID)
	require.Contains(t, string(got[1]), `"event_timestamp":"2025-12-13T02:00:00.123456Z"`, "UTC, microseconds")
}

func TestValidationErrorMessage(t *testing.T) {
	err := &client.ValidationError{Errors: []client.FieldError{
		{Field: "version", Reason: "required", Message: "is required"},
		{Field: "event_data", Reason: "type", Message: "must be a JSON object"},
	}}
	require.Equal(t, "auditstream: invalid event: version: is required; event_data: must be a JSON object", err.Error())
}
