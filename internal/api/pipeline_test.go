package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/seedclient"
	"github.com/auditstream/auditstream/internal/writer"
)

// TestSeedClientReadsWhatItWrote runs the whole pipeline: a client
// generated from the seed's API writes events through the HTTP API, the
// writer moves them from Kafka into PostgreSQL, and the same client reads
// them back through the query endpoint.
func TestSeedClientReadsWhatItWrote(t *testing.T) {
	f := newFixture(t)
	runWriter(t, f)
	client := f.seedClient()
	ctx := t.Context()

	correlation := "pipeline-" + uuid.NewString()
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	var sent []seedclient.AuditEventRequest
	for i := range 3 {
		sent = append(sent, seedclient.AuditEventRequest{
			Version:        "1.0",
			EventType:      "workflow.step.finished",
			EventTimestamp: base.Add(time.Duration(i) * time.Second),
			EventCategory:  seedclient.Workflow,
			EventAction:    "finished",
			EventOutcome:   seedclient.EventOutcomeSuccess,
			CorrelationId:  correlation,
			ActorId:        ptr(fmt.Sprintf("actor-%d", i)),
			DurationMs:     ptr(i * 10),
			EventData:      map[string]any{"step": float64(i), "nested": map[string]any{"ok": true}},
		})
	}
	one, err := client.CreateAuditEventWithResponse(ctx, sent[0])
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, one.StatusCode(), "%s", one.Body)
	batch, err := client.CreateAuditEventsBatchWithResponse(ctx, sent[1:])
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, batch.StatusCode(), "%s", batch.Body)

	var got *seedclient.AuditEventsQueryResponse
	require.Eventually(t, func() bool {
		res, err := client.QueryAuditEventsWithResponse(ctx, &seedclient.QueryAuditEventsParams{CorrelationId: &correlation, Since: ptr("1h")})
		if err != nil || res.JSON200 == nil {
			return false
		}
		got = res.JSON200
		return len(got.Data) == len(sent)
	}, 30*time.Second, 50*time.Millisecond, "the written events become queryable")

	require.Equal(t, len(sent), int(got.Pagination.Total))
	require.False(t, got.Pagination.HasMore)
	for i, ev := range got.Data {
		want := sent[len(sent)-1-i] // newest first
		require.True(t, want.EventTimestamp.Equal(ev.EventTimestamp), "order and timestamp")
		require.Equal(t, want.EventType, ev.EventType)
		require.Equal(t, *want.ActorId, *ev.ActorId)
		require.Equal(t, *want.DurationMs, *ev.DurationMs)
		require.Equal(t, want.EventData, ev.EventData)
		require.Equal(t, want.EventTimestamp.Format(time.DateOnly), ev.EventDate.Format(time.DateOnly))
	}
}

// runWriter consumes the fixture's topics into the shared database until
// the test ends.
func runWriter(t *testing.T, f *fixture) {
	t.Helper()
	w, err := writer.New(writer.Config{
		Group:              "writer-" + f.eventsTopic,
		EventsTopic:        f.eventsTopic,
		NotificationsTopic: f.notificationsTopic,
		DLQTopic:           f.eventsTopic + ".dlq",
		BatchSize:          500,
		BatchAge:           20 * time.Millisecond,
		MaxBackoff:         time.Second,
		WriteTimeout:       10 * time.Second,
		Rules:              audit.DefaultRules(),
	}, kafkaClientConfig(f.brokers), shared.db, kafka.NewPublisher(shared.producer), zap.NewNop(), writer.NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}
