package api_test

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/seedclient"
)

// seedClient is the seed's generated client, used as generated, with the
// one thing every client of the API now adds: its bearer token.
func (f *fixture) seedClient() *seedclient.ClientWithResponses {
	f.t.Helper()
	client, err := seedclient.NewClientWithResponses(f.url, seedclient.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+fullAccessToken)
		return nil
	}))
	require.NoError(f.t, err)
	return client
}

// TestSeedGeneratedClient drives the server with a client generated from the
// seed's Audit Write API (internal/seedclient), used exactly as generated:
// SPEC 2 promises that such a client works against us unchanged. Each call
// sends the Accept header the seed's own client sends for that operation.
// Its query operation is exercised through the whole pipeline in
// TestSeedClientReadsWhatItWrote.
func TestSeedGeneratedClient(t *testing.T) {
	f := newFixture(t)
	client := f.seedClient()
	ctx := t.Context()
	acceptJSONOrProblem := accept("application/json, application/problem+json")

	// The seed's example for create_audit_event, with a real UUID for
	// parent_event_id and an object for event_data.
	seedTimestamp := time.Date(2025, 12, 13, 2, 0, 0, 0, time.UTC) // "2025-12-13T02:00Z"
	parentID := uuid.New()
	single := seedclient.AuditEventRequest{
		Version:        "1.0",
		EventType:      "gateway.signal.received",
		EventTimestamp: seedTimestamp,
		EventCategory:  seedclient.Gateway,
		EventAction:    "received",
		EventOutcome:   seedclient.EventOutcomeSuccess,
		ActorType:      ptr("service"),
		ActorId:        ptr("gateway-service"),
		ResourceType:   ptr("Signal"),
		ResourceId:     ptr("fp-abc123"),
		CorrelationId:  "rr-2025-001",
		ParentEventId:  &parentID,
		Namespace:      ptr("namespace_example"),
		ClusterName:    ptr("cluster_name_example"),
		Severity:       ptr("severity_example"),
		DurationMs:     ptr(1),
		EventData:      map[string]any{"signal": "cpu-high", "labels": map[string]any{"pod": "xyz"}, "count": 3.0},
	}

	sentEvents := map[uuid.UUID]seedclient.AuditEventRequest{}

	t.Run("create_audit_event 201", func(t *testing.T) {
		res, err := client.CreateAuditEventWithResponse(ctx, single, acceptJSONOrProblem)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
		requireMediaType(t, res.HTTPResponse, "application/json")
		require.NotNil(t, res.JSON201, "201 parsed into AuditEventResponse: %s", res.Body)
		require.NotEqual(t, uuid.Nil, res.JSON201.EventId)
		require.True(t, seedTimestamp.Equal(res.JSON201.EventTimestamp),
			"event_timestamp %s, want %s", res.JSON201.EventTimestamp, seedTimestamp)
		require.NotEmpty(t, res.JSON201.Message)
		requireKnownMembers(t, res.Body, "event_id", "event_timestamp", "message")
		sentEvents[res.JSON201.EventId] = single
	})

	// Two elements: the seed example, and one with only the required
	// fields (every optional field absent, an empty event_data object).
	minimal := seedclient.AuditEventRequest{
		Version:        "1.0",
		EventType:      "workflow.step.completed",
		EventTimestamp: time.Date(2025, 12, 13, 2, 0, 30, 123456000, time.UTC),
		EventCategory:  seedclient.Workflow,
		EventAction:    "completed",
		EventOutcome:   seedclient.EventOutcomePending,
		CorrelationId:  "rr-2025-002",
		EventData:      map[string]any{},
	}
	batch := []seedclient.AuditEventRequest{single, minimal}

	t.Run("create_audit_events_batch 201", func(t *testing.T) {
		res, err := client.CreateAuditEventsBatchWithResponse(ctx, batch, accept("application/json"))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
		requireMediaType(t, res.HTTPResponse, "application/json")
		require.NotNil(t, res.JSON201, "201 parsed into BatchAuditEventResponse: %s", res.Body)
		require.Len(t, res.JSON201.EventIds, len(batch))
		require.NotEmpty(t, res.JSON201.Message)
		requireKnownMembers(t, res.Body, "event_ids", "message")
		for i, id := range res.JSON201.EventIds {
			require.NotEqual(t, uuid.Nil, id)
			require.NotContains(t, sentEvents, id, "event ids are unique")
			sentEvents[id] = batch[i]
		}
	})

	// What the seed's own (Python) client puts on the wire: its date-times
	// have no seconds. Sent through the generated client's raw-body variant.
	t.Run("create_audit_event 201 seed wire form", func(t *testing.T) {
		body := `{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2025-12-13T02:00Z",` +
			`"event_category":"gateway","event_action":"received","event_outcome":"success",` +
			`"correlation_id":"rr-2025-003","event_data":{"signal":"cpu-high"}}`
		res, err := client.CreateAuditEventWithBodyWithResponse(ctx, "application/json", strings.NewReader(body), acceptJSONOrProblem)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
		require.NotNil(t, res.JSON201, "%s", res.Body)
		require.True(t, seedTimestamp.Equal(res.JSON201.EventTimestamp))
		sentEvents[res.JSON201.EventId] = seedclient.AuditEventRequest{
			Version: "1.0", EventType: "gateway.signal.received", EventTimestamp: seedTimestamp,
			EventCategory: seedclient.Gateway, EventAction: "received", EventOutcome: seedclient.EventOutcomeSuccess,
			CorrelationId: "rr-2025-003", EventData: map[string]any{"signal": "cpu-high"},
		}
	})

	// The seed's example for create_notification_audit; notification_id is
	// made unique because the database is shared by the package's tests.
	notification := seedclient.NotificationAudit{
		RemediationId:   "remediation-123",
		NotificationId:  "notification-456-" + uuid.NewString(),
		Recipient:       "ops-team@example.com",
		Channel:         seedclient.NotificationAuditChannelEmail,
		MessageSummary:  "Incident alert: High CPU usage on pod xyz",
		Status:          seedclient.NotificationAuditStatusSent,
		SentAt:          time.Date(2025, 11, 3, 12, 0, 0, 0, time.UTC), // "2025-11-03T12:00Z"
		DeliveryStatus:  ptr("200 OK"),
		ErrorMessage:    ptr("Slack API timeout after 30 seconds"),
		EscalationLevel: ptr(0),
	}
	var created *seedclient.NotificationAuditResponse

	t.Run("create_notification_audit 201", func(t *testing.T) {
		before := time.Now()
		res, err := client.CreateNotificationAuditWithResponse(ctx, notification, acceptJSONOrProblem)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
		requireMediaType(t, res.HTTPResponse, "application/json")
		require.NotNil(t, res.JSON201, "201 parsed into NotificationAuditResponse: %s", res.Body)
		created = res.JSON201
		require.Positive(t, created.Id)
		require.False(t, created.CreatedAt.IsZero())
		require.True(t, created.UpdatedAt.Equal(created.CreatedAt), "a new record: updated_at = created_at")
		require.WithinDuration(t, before, created.CreatedAt, time.Minute)

		// The record echoes every field the client sent.
		echoed := seedclient.NotificationAudit{
			RemediationId:   created.RemediationId,
			NotificationId:  created.NotificationId,
			Recipient:       created.Recipient,
			Channel:         seedclient.NotificationAuditChannel(created.Channel),
			MessageSummary:  created.MessageSummary,
			Status:          seedclient.NotificationAuditStatus(created.Status),
			SentAt:          created.SentAt,
			DeliveryStatus:  created.DeliveryStatus,
			ErrorMessage:    created.ErrorMessage,
			EscalationLevel: created.EscalationLevel,
		}
		require.Equal(t, roundTrip(t, notification), roundTrip(t, echoed))
		requireKnownMembers(t, res.Body, "id", "created_at", "updated_at", "remediation_id", "notification_id",
			"recipient", "channel", "message_summary", "status", "sent_at", "delivery_status", "error_message",
			"escalation_level")
	})

	t.Run("create_audit_event 400", func(t *testing.T) {
		bad := single
		bad.Version = ""
		bad.EventCategory = "billing"
		bad.EventOutcome = "maybe"
		bad.DurationMs = ptr(-1)
		bad.EventData = nil // encoded as null
		res, err := client.CreateAuditEventWithResponse(ctx, bad, acceptJSONOrProblem)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, res.StatusCode(), "%s", res.Body)
		requireMediaType(t, res.HTTPResponse, "application/problem+json")
		p := res.ApplicationproblemJSON400
		require.NotNil(t, p, "400 parsed into RFC7807Problem: %s", res.Body)
		require.Equal(t, http.StatusBadRequest, p.Status)
		require.NotEmpty(t, p.Type)
		require.NotEmpty(t, p.Title)
		require.NotNil(t, p.Detail)
		require.NotNil(t, p.Instance)
		require.Equal(t, "/api/v1/audit/events", *p.Instance)
		require.NotNil(t, p.FieldErrors, "%s", res.Body)
		fe := *p.FieldErrors
		for _, field := range []string{"version", "event_category", "event_outcome", "duration_ms", "event_data"} {
			require.NotEmpty(t, fe[field], "field_errors names %s: %v", field, fe)
		}
		require.Len(t, fe, 5, "only the bad fields are named: %v", fe)
	})

	t.Run("create_notification_audit 400", func(t *testing.T) {
		bad := notification
		bad.NotificationId = "notification-bad-" + uuid.NewString()
		bad.Channel = "fax"
		bad.Status = "lost"
		bad.EscalationLevel = ptr(9)
		res, err := client.CreateNotificationAuditWithResponse(ctx, bad, acceptJSONOrProblem)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, res.StatusCode(), "%s", res.Body)
		requireMediaType(t, res.HTTPResponse, "application/problem+json")
		p := res.ApplicationproblemJSON400
		require.NotNil(t, p, "400 parsed into RFC7807Problem: %s", res.Body)
		require.Equal(t, http.StatusBadRequest, p.Status)
		require.NotNil(t, p.FieldErrors, "%s", res.Body)
		fe := *p.FieldErrors
		for _, field := range []string{"channel", "status", "escalation_level"} {
			require.NotEmpty(t, fe[field], "field_errors names %s: %v", field, fe)
		}
		require.Len(t, fe, 3, "only the bad fields are named: %v", fe)
	})

	t.Run("records in Kafka", func(t *testing.T) {
		require.Len(t, sentEvents, 2+len(batch), "the create subtests passed")
		require.NotNil(t, created)

		// Every accepted event, and nothing from the rejected request.
		recs := f.consume(f.eventsTopic, len(sentEvents))
		require.Len(t, recs, len(sentEvents))
		requireNoMoreRecords(t, f, f.eventsTopic, len(sentEvents))
		for _, rec := range recs {
			var id struct {
				EventID uuid.UUID `json:"event_id"`
			}
			require.NoError(t, json.Unmarshal(rec.Value, &id), "%s", rec.Value)
			sent, ok := sentEvents[id.EventID]
			require.True(t, ok, "record %s carries an event_id the API answered", rec.Value)
			delete(sentEvents, id.EventID)
			require.Equal(t, sent.CorrelationId, string(rec.Key), "key is the correlation_id")
			var got seedclient.AuditEventRequest
			require.NoError(t, json.Unmarshal(rec.Value, &got), "%s", rec.Value)
			require.Equal(t, roundTrip(t, sent), got, "the record is the request as sent: %s", rec.Value)
			requireKnownMembers(t, rec.Value, append(auditEventRequestMembers, "event_id")...)
		}

		rec := f.consume(f.notificationsTopic, 1)[0]
		require.Equal(t, notification.NotificationId, string(rec.Key), "key is the notification_id")
		var got seedclient.NotificationAuditResponse
		require.NoError(t, json.Unmarshal(rec.Value, &got), "%s", rec.Value)
		require.Equal(t, roundTrip(t, *created), got, "the record is what the 201 answered: %s", rec.Value)
		requireNoMoreRecords(t, f, f.notificationsTopic, 1)
	})
}

var auditEventRequestMembers = []string{
	"version", "event_type", "event_timestamp", "event_category", "event_action", "event_outcome",
	"actor_type", "actor_id", "resource_type", "resource_id", "correlation_id", "parent_event_id",
	"namespace", "cluster_name", "severity", "duration_ms", "event_data",
}

func ptr[T any](v T) *T { return &v }

// accept sets the Accept header the seed's client sends for an operation.
func accept(types string) seedclient.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", types)
		return nil
	}
}

// requireMediaType checks the response's media type exactly: the generated
// parser only looks for "json" in it.
func requireMediaType(t *testing.T, res *http.Response, want string) {
	t.Helper()
	mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, want, mt)
}

// requireKnownMembers checks that a JSON object has no member outside the
// seed's schema, which a strict seed client would reject.
func requireKnownMembers(t *testing.T, body []byte, members ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	for k := range m {
		require.Contains(t, members, k, "member %q is not in the seed's schema: %s", k, body)
	}
}

// roundTrip is v as the other side of the wire decodes it.
func roundTrip[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out T
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// requireNoMoreRecords checks that topic holds exactly n records.
func requireNoMoreRecords(t *testing.T, f *fixture, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	seen := 0
	for ctx.Err() == nil {
		seen += cl.PollFetches(ctx).NumRecords()
	}
	require.Equal(t, n, seen, "records in %s", topic)
}
