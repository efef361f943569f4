package writer_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/store"
)

// TestStoreAndDeduplicate: what is produced is stored field for field, and
// what is produced again is counted as a duplicate, not stored twice.
func TestStoreAndDeduplicate(t *testing.T) {
	tp := newTopics(t)
	r := startWriter(t, tp, rigOptions{})
	p := prefix(t)

	full := fullEvent(p + "full")
	minimal := minimalEvent(p + "minimal")

	// As the API publishes a notification: id from the sequence, times set.
	var apiID int64
	require.NoError(t, env.db.Pool().QueryRow(t.Context(), `SELECT nextval('notification_audit_id_seq')`).Scan(&apiID))
	api := audit.Notification{
		ID: apiID, RemediationID: "rem-1", NotificationID: p + "api", Recipient: "oncall@example.com",
		Channel: "pagerduty", MessageSummary: "node down", Status: "sent",
		SentAt:         time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond),
		DeliveryStatus: ptr("acknowledged"), ErrorMessage: ptr("none"), EscalationLevel: ptr(int32(5)),
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	api.UpdatedAt = api.CreatedAt
	// As a direct producer publishes one: no id, no times.
	direct := audit.Notification{
		RemediationID: "rem-2", NotificationID: p + "direct", Recipient: "#ops", Channel: "slack",
		MessageSummary: "pod restarted", Status: "pending", SentAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	// Two records with one notification_id: the first stored wins.
	first := direct
	first.NotificationID, first.Recipient = p+"twice", "first@example.com"
	second := first
	second.Recipient, second.Status = "second@example.com", "failed"

	produced := produce(t,
		eventRecord(tp.events, full),
		eventRecord(tp.events, minimal),
		notificationRecord(tp.notifications, api),
		notificationRecord(tp.notifications, direct),
		notificationRecord(tp.notifications, first),
		notificationRecord(tp.notifications, second),
	)
	eventually(t, 15*time.Second, func() bool {
		return countEvents(t, p) == 2 && countNotifications(t, p) == 3 &&
			r.metric("auditstream_writer_duplicates_total", "table", "notification_audit") == 1
	}, "2 events, 3 notifications, 1 duplicate notification")

	requireStoredEvent(t, full)

	// No event_id: the id derives from where the record is in Kafka and
	// from the record itself.
	minimal.EventID = recordID(t, env.admin, produced[1])
	requireStoredEvent(t, minimal)

	require.Equal(t, api, loadNotification(t, api.NotificationID))

	got := loadNotification(t, direct.NotificationID)
	var last int64
	require.NoError(t, env.db.Pool().QueryRow(t.Context(), `SELECT last_value FROM notification_audit_id_seq`).Scan(&last))
	require.Greater(t, got.ID, apiID, "id drawn from notification_audit_id_seq")
	require.LessOrEqual(t, got.ID, last)
	require.WithinDuration(t, time.Now(), got.CreatedAt, time.Minute)
	want := direct
	want.ID, want.CreatedAt, want.UpdatedAt = got.ID, got.CreatedAt, got.UpdatedAt
	require.Equal(t, want, got)

	got = loadNotification(t, first.NotificationID)
	require.Equal(t, "first@example.com", got.Recipient)
	require.Equal(t, "pending", got.Status)

	require.Equal(t, 2.0, r.metric("auditstream_writer_rows_written_total", "table", "audit_events"))
	require.Equal(t, 3.0, r.metric("auditstream_writer_rows_written_total", "table", "notification_audit"))
	require.Zero(t, r.metric("auditstream_writer_duplicates_total", "table", "audit_events"))

	// The same records again (same event_id / notification_id): no rows.
	produce(t,
		eventRecord(tp.events, full),
		notificationRecord(tp.notifications, api),
		notificationRecord(tp.notifications, direct),
		notificationRecord(tp.notifications, first),
	)
	eventually(t, 15*time.Second, func() bool {
		return r.metric("auditstream_writer_duplicates_total", "table", "audit_events") == 1 &&
			r.metric("auditstream_writer_duplicates_total", "table", "notification_audit") == 4
	}, "duplicates counted")
	require.Equal(t, 2, countEvents(t, p))
	require.Equal(t, 3, countNotifications(t, p))
	requireStoredEvent(t, full)
	require.Equal(t, 2.0, r.metric("auditstream_writer_rows_written_total", "table", "audit_events"))
	require.Equal(t, 3.0, r.metric("auditstream_writer_rows_written_total", "table", "notification_audit"))
	require.Zero(t, endOffsets(t, tp.dlq), "nothing dead-lettered")
}

// TestDeterministicIDAcrossPartitions: records without event_id in every
// partition each get the id of their own coordinates.
func TestDeterministicIDAcrossPartitions(t *testing.T) {
	tp := newTopics(t)
	startWriter(t, tp, rigOptions{})
	p := prefix(t)
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, eventRecord(tp.events, minimalEvent(p+itoa(i))))
	}
	produced := produce(t, recs...)
	eventually(t, 15*time.Second, func() bool { return countEvents(t, p) == 30 }, "30 events stored")
	partitions := map[int32]bool{}
	for _, rec := range produced {
		partitions[rec.Partition] = true
		id := recordID(t, env.admin, rec)
		require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND correlation_id = $2`,
			id, string(rec.Key)), "record at %s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	}
	require.Greater(t, len(partitions), 1, "records spread over partitions")
	require.NotEqual(t, uuid.Nil, recordID(t, env.admin, produced[0]))
}

// TestDroppedPartitionIsCreatedAgain: a partition dropped behind the
// writer's back (retention) while its month is cached as existing does not
// send that month's records to the DLQ: the store checks its partitions
// again and the records are stored.
func TestDroppedPartitionIsCreatedAgain(t *testing.T) {
	tp := newTopics(t)
	r := startWriter(t, tp, rigOptions{})
	p := prefix(t)
	// A month no other test writes to.
	month := time.Date(1972, 2, 10, 12, 0, 0, 0, time.UTC)
	partition := pgx.Identifier{store.PartitionName(month)}.Sanitize()
	first := minimalEvent(p + "first")
	first.EventTimestamp = month
	produce(t, eventRecord(tp.events, first))
	eventually(t, 15*time.Second, func() bool { return countEvents(t, p) == 1 }, "the first event stored")

	_, err := env.db.Pool().Exec(t.Context(), "DROP TABLE "+partition)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = env.db.Pool().Exec(context.Background(), "DROP TABLE IF EXISTS "+partition) })
	second := minimalEvent(p + "second")
	second.EventTimestamp = month.Add(time.Hour)
	produce(t, eventRecord(tp.events, second))
	eventually(t, 15*time.Second, func() bool { return countEvents(t, p+"second") == 1 }, "the second event stored")
	require.Equal(t, 1, count(t, `SELECT count(*) FROM `+partition+` WHERE correlation_id = $1`, p+"second"))
	require.Zero(t, endOffsets(t, tp.dlq), "nothing dead-lettered")
	require.Zero(t, r.metric("auditstream_writer_dead_letters_total", "class", "failed"))
}
