package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/spool"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

func TestCreateEventPublishesRecord(t *testing.T) {
	f := newFixture(t)
	res := f.postJSON("/api/v1/audit/events", validEvent())
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	body := res.json(t)
	id, err := uuid.Parse(body["event_id"].(string))
	require.NoError(t, err)
	require.Equal(t, uuid.Version(7), id.Version(), "server-assigned ids are UUIDv7")
	require.Equal(t, "2025-12-13T02:00:00Z", body["event_timestamp"])
	require.NotEmpty(t, res.header.Get("X-Request-ID"))

	recs := f.consume(f.eventsTopic, 1)
	rec := recs[0]
	require.Equal(t, "rr-2025-001", string(rec.Key), "key is the correlation_id")
	ct, _ := header(rec, "content-type")
	require.Equal(t, "application/json", ct)
	src, _ := header(rec, "auditstream-source")
	require.Equal(t, "ingest-api", src)
	require.Equal(t, []string{kafka.HeaderContentType, kafka.HeaderSource, kafka.HeaderPrincipal}, headerKeys(rec),
		"SPEC 3's headers and the (unsigned, here) principal, in order; no watermill metadata")

	var value map[string]any
	require.NoError(t, json.Unmarshal(rec.Value, &value))
	want := validEvent()
	want["event_id"] = id.String()
	want["event_timestamp"] = "2025-12-13T02:00:00Z"
	want["duration_ms"] = float64(12)
	require.Equal(t, want, value, "the value is the request in canonical form with its id")
}

func TestCreateEventKeepsClientEventID(t *testing.T) {
	f := newFixture(t)
	ev := validEvent()
	id := uuid.New()
	ev["event_id"] = id.String()
	ev["event_timestamp"] = "2025-12-13T07:30:15.123456789+05:30"
	res := f.postJSON("/api/v1/audit/events", ev)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.Equal(t, id.String(), res.json(t)["event_id"])
	require.Equal(t, "2025-12-13T02:00:15.123456Z", res.json(t)["event_timestamp"], "UTC, microseconds")

	rec := f.consume(f.eventsTopic, 1)[0]
	var value map[string]any
	require.NoError(t, json.Unmarshal(rec.Value, &value))
	require.Equal(t, id.String(), value["event_id"])
	require.Equal(t, "2025-12-13T02:00:15.123456Z", value["event_timestamp"])
}

func TestCreateEventsBatchPublishesAllInRequestOrder(t *testing.T) {
	f := newFixture(t)
	const n = 250
	batch := make([]map[string]any, n)
	clientID := uuid.New()
	for i := range batch {
		batch[i] = validEvent()
		batch[i]["correlation_id"] = fmt.Sprintf("corr-%d", i)
	}
	batch[7]["event_id"] = clientID.String()
	res := f.postJSON("/api/v1/audit/events/batch", batch)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	var out api.BatchAuditEventResponse
	require.NoError(t, json.Unmarshal(res.body, &out))
	require.Len(t, out.EventIDs, n)
	require.Equal(t, clientID, out.EventIDs[7])

	recs := f.consume(f.eventsTopic, n)
	byID := map[string]string{}
	for _, r := range recs {
		var v map[string]any
		require.NoError(t, json.Unmarshal(r.Value, &v))
		require.Equal(t, v["correlation_id"], string(r.Key))
		byID[v["event_id"].(string)] = string(r.Key)
	}
	for i, id := range out.EventIDs {
		require.Equal(t, fmt.Sprintf("corr-%d", i), byID[id.String()], "event_ids[%d] names the %d-th record", i, i)
	}
}

func TestCreateNotificationPublishesAndRejectsStoredDuplicate(t *testing.T) {
	f := newFixture(t)
	notificationID := "notification-" + uuid.NewString()
	res := f.postJSON("/api/v1/audit/notifications", validNotification(notificationID))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	body := res.json(t)
	id := int64(body["id"].(float64))
	require.Positive(t, id)
	require.Equal(t, notificationID, body["notification_id"])
	require.Equal(t, "2025-11-03T12:00:00Z", body["sent_at"])
	require.Equal(t, body["created_at"], body["updated_at"])

	rec := f.consume(f.notificationsTopic, 1)[0]
	require.Equal(t, notificationID, string(rec.Key), "key is the notification_id")
	src, _ := header(rec, "auditstream-source")
	require.Equal(t, "ingest-api", src)
	var value map[string]any
	require.NoError(t, json.Unmarshal(rec.Value, &value))
	require.Equal(t, body, value, "the record carries exactly what the client was told")

	// Not stored yet: the same record again is a retry, answered with the
	// same id and timestamps (the writer stores it once); other content
	// under this notification_id is a conflict, although nothing is stored
	// yet, since two 201s with different ids cannot both be what is stored.
	res2 := f.postJSON("/api/v1/audit/notifications", validNotification(notificationID))
	require.Equal(t, http.StatusCreated, res2.status, "%s", res2.body)
	require.Equal(t, body, res2.json(t), "a retry gets the first answer")
	other := validNotification(notificationID)
	other["message_summary"] = "something else"
	res2 = f.postJSON("/api/v1/audit/notifications", other)
	require.Equal(t, http.StatusConflict, res2.status, "%s", res2.body)

	// Once stored (as the writer would store it), the API answers 409.
	storeNotification(t, shared.pg.URL(), id, notificationID)
	res3 := f.postJSON("/api/v1/audit/notifications", validNotification(notificationID))
	require.Equal(t, http.StatusConflict, res3.status, "%s", res3.body)
	p := res3.json(t)
	require.Equal(t, "https://auditstream.dev/problems/duplicate-notification", p["type"])
	require.Equal(t, "/api/v1/audit/notifications", p["instance"])
	require.Equal(t, "application/problem+json", res3.header.Get("Content-Type"))
}

func storeNotification(t *testing.T, url string, id int64, notificationID string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), `INSERT INTO notification_audit
		(id, remediation_id, notification_id, recipient, channel, message_summary, status, sent_at, created_at, updated_at)
		VALUES ($1, 'r', $2, 'ops@example.com', 'email', 'summary', 'sent', now(), now(), now())`, id, notificationID)
	require.NoError(t, err)
}

func TestCreateNotificationWithPostgresDownAnswers202(t *testing.T) {
	pg := testenv.NewPostgres(t)
	_, err := store.Migrate(t.Context(), pg.URL(), zap.NewNop())
	require.NoError(t, err)
	db, err := store.Open(t.Context(), store.Config{URL: pg.URL(), MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, pg.Stop(t.Context()))

	f := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Notifications = db })
	notificationID := "notification-" + uuid.NewString()
	res := f.postJSON("/api/v1/audit/notifications", validNotification(notificationID))
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	require.Equal(t, "accepted", res.json(t)["status"])

	rec := f.consume(f.notificationsTopic, 1)[0]
	var value map[string]any
	require.NoError(t, json.Unmarshal(rec.Value, &value))
	require.Equal(t, notificationID, value["notification_id"], "the record is published anyway")
	require.NotContains(t, value, "id", "no id could be reserved; the writer assigns it")
	require.Contains(t, value, "created_at")
}

func TestKafkaDownAnswers503AndAcceptsNothing(t *testing.T) {
	k := testenv.NewKafka(t, map[string]int32{"down.events": 1, "down.notifications": 1})
	producer, err := newProducer(k.Brokers(), 3*time.Second)
	require.NoError(t, err)
	require.NoError(t, producer.Connect(t.Context()))
	t.Cleanup(func() { _ = producer.Close() })
	require.NoError(t, k.Close())

	f := newFixture(t, func(c *api.Config, d *api.Deps) {
		d.Publisher = kafka.NewPublisher(producer)
		c.EventsTopic, c.NotificationsTopic = "down.events", "down.notifications"
	})
	for _, tc := range []struct {
		path string
		body any
	}{
		{"/api/v1/audit/events", validEvent()},
		{"/api/v1/audit/events/batch", []any{validEvent(), validEvent()}},
		{"/api/v1/audit/notifications", validNotification("n-" + uuid.NewString())},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/api/v1/audit/"), func(t *testing.T) {
			start := time.Now()
			res := f.postJSON(tc.path, tc.body)
			require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
			require.Less(t, time.Since(start), 15*time.Second, "the wait is bounded by the publish timeout")
			require.Equal(t, "5", res.header.Get("Retry-After"))
			p := res.json(t)
			require.Equal(t, "https://auditstream.dev/problems/kafka-unavailable", p["type"])
			require.NotContains(t, p, "event_id", "nothing is reported as accepted")
		})
	}
}

func TestProducerNotConnectedAnswers503(t *testing.T) {
	producer, err := newProducer(shared.kafka.Brokers(), time.Second)
	require.NoError(t, err)
	f := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Publisher = kafka.NewPublisher(producer) })
	res := f.postJSON("/api/v1/audit/events", validEvent())
	require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
	ids := res.json(t)["event_ids"].([]any)
	require.Len(t, ids, 1, "the id to retry with is handed back")
}

// TestKafkaDownWithASpool: with SPOOL_DIR, what Kafka cannot take is
// answered 202 with the 201 body (the notification with SPEC 2.4's 202
// shape); a spool that cannot take it answers 503 with its own problem.
func TestKafkaDownWithASpool(t *testing.T) {
	k := testenv.NewKafka(t, map[string]int32{"spool.events": 1, "spool.notifications": 1})
	producer, err := newProducer(k.Brokers(), time.Second)
	require.NoError(t, err)
	require.NoError(t, producer.Connect(t.Context()))
	t.Cleanup(func() { _ = producer.Close() })
	require.NoError(t, k.Close())
	withSpool := func(dir string, maxBytes int64) fixtureOption {
		return func(c *api.Config, d *api.Deps) {
			store, _ := spool.Open(spool.Config{Dir: dir, MaxBytes: maxBytes}, zap.NewNop(), prometheus.NewRegistry())
			t.Cleanup(func() { require.NoError(t, store.Close()) })
			d.Publisher = spool.NewPublisher(kafka.NewPublisher(producer), store, zap.NewNop())
			c.EventsTopic, c.NotificationsTopic = "spool.events", "spool.notifications"
		}
	}

	f := newFixture(t, withSpool(t.TempDir(), 1<<20))
	ev := validEvent()
	ev["event_id"] = uuid.NewString()
	res := f.postJSON("/api/v1/audit/events", ev)
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	body := res.json(t)
	require.Equal(t, ev["event_id"], body["event_id"])
	require.Contains(t, body, "event_timestamp")
	require.Contains(t, body["message"], "spool")

	res = f.postJSON("/api/v1/audit/events/batch", []any{validEvent(), validEvent()})
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	require.Len(t, res.json(t)["event_ids"], 2)
	require.Contains(t, res.json(t)["message"], "2 audit events accepted into the local spool")

	res = f.postJSON("/api/v1/audit/notifications", validNotification("n-"+uuid.NewString()))
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	require.Equal(t, "accepted", res.json(t)["status"])
	require.Contains(t, res.json(t)["message"], "spool")

	// Full: 1 MiB holds a few of the largest records.
	big := validEvent()
	big["event_data"] = map[string]any{"blob": strings.Repeat("x", 60<<10)}
	var full response
	for range 40 {
		if full = f.postJSON("/api/v1/audit/events/batch", []any{big, big, big, big}); full.status != http.StatusAccepted {
			break
		}
	}
	require.Equal(t, http.StatusServiceUnavailable, full.status, "%s", full.body)
	require.Equal(t, "5", full.header.Get("Retry-After"))
	require.Equal(t, "https://auditstream.dev/problems/spool-full", full.json(t)["type"])
	require.Len(t, full.json(t)["event_ids"], 4, "the ids to retry with")

	// Unwritable: the spool directory is a file.
	notADir := filepath.Join(t.TempDir(), "spool")
	require.NoError(t, os.WriteFile(notADir, nil, 0o600))
	f = newFixture(t, withSpool(notADir, 1<<20))
	res = f.postJSON("/api/v1/audit/events", validEvent())
	require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
	p := res.json(t)
	require.Equal(t, "https://auditstream.dev/problems/spool-unavailable", p["type"])
	require.Contains(t, p["detail"], "not a directory", "the system's reason")
	require.NotContains(t, p["detail"], notADir, "not the path")
}
