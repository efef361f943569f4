package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
)

func ptr[T any](v T) *T { return &v }

// testEvent is a valid event with every optional field set; corr keeps
// the rows of one test apart from the others on the shared database.
func testEvent(corr string, ts time.Time) audit.Event {
	return audit.Event{
		EventID:        uuid.New(),
		Version:        "1.0",
		EventType:      "store.test",
		EventTimestamp: ts.UTC().Truncate(time.Microsecond),
		EventCategory:  "gateway",
		EventAction:    "create",
		EventOutcome:   "success",
		CorrelationID:  corr,
		ActorType:      ptr("user"),
		ActorID:        ptr("alice"),
		ResourceType:   ptr("pod"),
		ResourceID:     ptr("pod-1"),
		ParentEventID:  ptr(uuid.New()),
		Namespace:      ptr("default"),
		ClusterName:    ptr("c1"),
		Severity:       ptr("info"),
		DurationMS:     ptr(int64(12)),
		ActorIP:        netip.MustParseAddr("2001:db8::7"),
		ClusterID:      ptr("cluster-uid-1"),
		ErrorCode:      ptr("E42"),
		ErrorMessage:   ptr("disk full"),
		IsSensitive:    true,
		RetentionDays:  ptr(int32(90)),
		EventData:      json.RawMessage(`{"a":1,"b":[true,null,"x"]}`),
		SubmittedBy:    ptr("svc-store-test"),
	}
}

func testNotification(notificationID string) audit.Notification {
	return audit.Notification{
		RemediationID:   "rem-1",
		NotificationID:  notificationID,
		Recipient:       "ops@example.com",
		Channel:         "email",
		MessageSummary:  "disk full",
		Status:          "sent",
		SentAt:          time.Now().UTC().Truncate(time.Microsecond),
		DeliveryStatus:  ptr("delivered"),
		ErrorMessage:    nil,
		EscalationLevel: ptr(int32(2)),
		SubmittedBy:     ptr("kafka:unknown"),
	}
}

const selectEventSQL = `SELECT event_id, version, event_type, event_timestamp, event_category, event_action,
	event_outcome, correlation_id, actor_type, actor_id, resource_type, resource_id, parent_event_id,
	namespace, cluster_name, severity, duration_ms, event_data, submitted_by,
	actor_ip, cluster_id, error_code, error_message, is_sensitive, retention_days
	FROM audit_events WHERE event_id = $1`

func loadEvent(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) audit.Event {
	t.Helper()
	var e audit.Event
	var data []byte
	var ip *netip.Prefix
	require.NoError(t, pool.QueryRow(t.Context(), selectEventSQL, id).Scan(
		&e.EventID, &e.Version, &e.EventType, &e.EventTimestamp, &e.EventCategory, &e.EventAction,
		&e.EventOutcome, &e.CorrelationID, &e.ActorType, &e.ActorID, &e.ResourceType, &e.ResourceID,
		&e.ParentEventID, &e.Namespace, &e.ClusterName, &e.Severity, &e.DurationMS, &data, &e.SubmittedBy,
		&ip, &e.ClusterID, &e.ErrorCode, &e.ErrorMessage, &e.IsSensitive, &e.RetentionDays))
	if ip != nil {
		e.ActorIP = ip.Addr()
	}
	e.EventTimestamp = e.EventTimestamp.UTC()
	e.EventData = data
	return e
}

func requireSameEvent(t *testing.T, want, got audit.Event) {
	t.Helper()
	require.JSONEq(t, string(want.EventData), string(got.EventData))
	want.EventData, got.EventData = nil, nil
	require.Equal(t, want, got)
}

func countEvents(t *testing.T, pool *pgxpool.Pool, corr string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_events WHERE correlation_id = $1`, corr).Scan(&n))
	return n
}

func TestWriteEventsDedup(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	corr := "write-dedup-" + uuid.NewString()
	now := time.Now()

	a := testEvent(corr, now)
	aAgain := a
	aAgain.EventAction = "changed" // same event_id, other content: the first wins, the other is a conflict
	b := testEvent(corr, now.Add(-time.Minute))
	b.ActorType, b.ActorID, b.ResourceType, b.ResourceID, b.ParentEventID = nil, nil, nil, nil, nil
	b.Namespace, b.ClusterName, b.Severity, b.DurationMS, b.SubmittedBy = nil, nil, nil, nil, nil
	b.EventData = json.RawMessage(`{}`)
	aConflict := Conflict{Index: 1, EventID: a.EventID, Stored: a.ContentDigest(), Got: aAgain.ContentDigest(), InBatch: true}

	res, err := s.Write(ctx, []audit.Event{a, aAgain, b, b}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 2, EventDuplicates: 1, EventConflicts: []Conflict{aConflict}}, res)
	requireSameEvent(t, a, loadEvent(t, s.Pool(), a.EventID))
	requireSameEvent(t, b, loadEvent(t, s.Pool(), b.EventID))

	// Across calls: stored ids are skipped, new ones stored; a stored id
	// with other content is a conflict.
	c := testEvent(corr, now)
	res, err = s.Write(ctx, []audit.Event{aAgain, b, c, a}, nil)
	require.NoError(t, err)
	aConflict.Index, aConflict.InBatch = 0, false
	require.Equal(t, WriteResult{Events: 1, EventDuplicates: 2, EventConflicts: []Conflict{aConflict}}, res)
	require.Equal(t, 3, countEvents(t, s.Pool(), corr))
	requireSameEvent(t, a, loadEvent(t, s.Pool(), a.EventID))

	// The same event_id with another timestamp (another partition) is
	// still caught: de-duplication is exact across partitions, and the
	// other timestamp is other content.
	moved := a
	moved.EventTimestamp = a.EventTimestamp.AddDate(0, -1, 0)
	res, err = s.Write(ctx, []audit.Event{moved, a}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{EventDuplicates: 1, EventConflicts: []Conflict{
		{Index: 0, EventID: a.EventID, Stored: a.ContentDigest(), Got: moved.ContentDigest()},
	}}, res)
	require.Equal(t, 3, countEvents(t, s.Pool(), corr))

	// Nothing at all is fine.
	res, err = s.Write(ctx, nil, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{}, res)
}

// TestWriteEventConflictsInBatch: of several records of one new event_id
// the first is stored; the others are duplicates or conflicts by their
// content, also when the first comes back later.
func TestWriteEventConflictsInBatch(t *testing.T) {
	s := openStore(t, pg.URL())
	corr := "write-inbatch-" + uuid.NewString()
	x := testEvent(corr, time.Now())
	y := x
	y.EventData = json.RawMessage(`{"other":true}`)
	res, err := s.Write(t.Context(), []audit.Event{x, y, x, y}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 1, EventDuplicates: 1, EventConflicts: []Conflict{
		{Index: 1, EventID: x.EventID, Stored: x.ContentDigest(), Got: y.ContentDigest(), InBatch: true},
		{Index: 3, EventID: x.EventID, Stored: x.ContentDigest(), Got: y.ContentDigest(), InBatch: true},
	}}, res)
	requireSameEvent(t, x, loadEvent(t, s.Pool(), x.EventID))
}

// TestWriteDuplicateOfUndigestedRow: a row stored before migration 000003
// has no digest to compare with; a record repeating its id is a duplicate,
// counted as unverified.
func TestWriteDuplicateOfUndigestedRow(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	old := testEvent("write-undigested-"+uuid.NewString(), time.Now())
	_, err := s.Pool().Exec(ctx, `INSERT INTO audit_event_ids (event_id, event_timestamp) VALUES ($1, $2)`, old.EventID, old.EventTimestamp)
	require.NoError(t, err)
	res, err := s.Write(ctx, []audit.Event{old}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{EventDuplicates: 1, EventDuplicatesUnverified: 1}, res)

	var digest []byte
	fresh := testEvent(old.CorrelationID, time.Now())
	_, err = s.Write(ctx, []audit.Event{fresh}, nil)
	require.NoError(t, err)
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT content_sha256 FROM audit_event_ids WHERE event_id = $1`, fresh.EventID).Scan(&digest))
	want := fresh.ContentDigest()
	require.Equal(t, want[:], digest, "new rows are registered with their digest")
}

func TestWriteNotifications(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	prefix := "write-notif-" + uuid.NewString()

	// As the API publishes it: id and times assigned.
	var assignedID int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT nextval('notification_audit_id_seq')`).Scan(&assignedID))
	api := testNotification(prefix + "-api")
	api.ID = assignedID
	api.CreatedAt = time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond)
	api.UpdatedAt = api.CreatedAt.Add(time.Millisecond)
	api.SubmittedBy = ptr("svc-notifier")

	// As a direct producer publishes it: no id, no times.
	direct := testNotification(prefix + "-direct")
	direct.DeliveryStatus, direct.EscalationLevel = nil, nil
	direct.ErrorMessage = ptr("smtp 550")
	direct.SubmittedBy = nil // stored as NULL, as rows from before submitted_by are

	// A second record with the API's notification_id: the first wins.
	clash := testNotification(prefix + "-api")
	clash.Recipient = "second@example.com"

	before := time.Now()
	res, err := s.Write(ctx, nil, []audit.Notification{api, direct, clash})
	require.NoError(t, err)
	require.Equal(t, WriteResult{Notifications: 2, NotificationDuplicates: 1}, res)

	got := loadNotification(t, s.Pool(), api.NotificationID)
	require.Equal(t, api, got)

	got = loadNotification(t, s.Pool(), direct.NotificationID)
	require.Greater(t, got.ID, assignedID, "id drawn from notification_audit_id_seq")
	var last int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT last_value FROM notification_audit_id_seq`).Scan(&last))
	require.LessOrEqual(t, got.ID, last)
	require.WithinDuration(t, before, got.CreatedAt, time.Minute)
	require.Equal(t, got.CreatedAt, got.UpdatedAt)
	want := direct
	want.ID, want.CreatedAt, want.UpdatedAt = got.ID, got.CreatedAt, got.UpdatedAt
	require.Equal(t, want, got)

	// Across calls, whatever the content.
	res, err = s.Write(ctx, nil, []audit.Notification{clash, direct})
	require.NoError(t, err)
	require.Equal(t, WriteResult{NotificationDuplicates: 2}, res)
	require.Equal(t, "ops@example.com", loadNotification(t, s.Pool(), api.NotificationID).Recipient)

	// Two direct records without id get two ids.
	d1, d2 := testNotification(prefix+"-d1"), testNotification(prefix+"-d2")
	res, err = s.Write(ctx, nil, []audit.Notification{d1, d2})
	require.NoError(t, err)
	require.Equal(t, WriteResult{Notifications: 2}, res)
	require.NotEqual(t, loadNotification(t, s.Pool(), d1.NotificationID).ID, loadNotification(t, s.Pool(), d2.NotificationID).ID)
}

func loadNotification(t *testing.T, pool *pgxpool.Pool, notificationID string) audit.Notification {
	t.Helper()
	var n audit.Notification
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT id, remediation_id, notification_id, recipient, channel,
		message_summary, status, sent_at, delivery_status, error_message, escalation_level, created_at, updated_at,
		submitted_by
		FROM notification_audit WHERE notification_id = $1`, notificationID).Scan(
		&n.ID, &n.RemediationID, &n.NotificationID, &n.Recipient, &n.Channel, &n.MessageSummary, &n.Status,
		&n.SentAt, &n.DeliveryStatus, &n.ErrorMessage, &n.EscalationLevel, &n.CreatedAt, &n.UpdatedAt, &n.SubmittedBy))
	n.SentAt, n.CreatedAt, n.UpdatedAt = n.SentAt.UTC(), n.CreatedAt.UTC(), n.UpdatedAt.UTC()
	return n
}

func TestWriteMixedBatchIsOneTransaction(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	corr := "write-tx-" + uuid.NewString()
	ev := testEvent(corr, time.Now())
	// escalation_level 9 passes the Go type but not the table's CHECK:
	// the events of the same call must not be stored either.
	bad := testNotification(corr)
	bad.EscalationLevel = ptr(int32(9))
	_, err := s.Write(ctx, []audit.Event{ev}, []audit.Notification{bad})
	require.Error(t, err)
	require.Equal(t, errclass.Failed, Classify(err), "%v", err) // 23514
	require.Equal(t, errclass.Failed, errclass.Of(err), "Write returns the class on the error")
	require.False(t, noPartitionForRow(err), "a CHECK constraint names itself: not retried as a missing partition")
	require.Zero(t, countEvents(t, s.Pool(), corr))
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_event_ids WHERE event_id = $1`, ev.EventID).Scan(&n))
	require.Zero(t, n, "the id register rolls back with the rows")

	res, err := s.Write(ctx, []audit.Event{ev}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 1}, res)
}

func TestWritePoisonRow(t *testing.T) {
	s := openStore(t, pg.URL())
	corr := "write-poison-" + uuid.NewString()
	ev := testEvent(corr, time.Now())
	// Valid JSON that jsonb cannot hold (numeric overflow): SQLSTATE 22003.
	ev.EventData = json.RawMessage(`{"n":1e200000}`)
	_, err := s.Write(t.Context(), []audit.Event{ev, testEvent(corr, time.Now())}, nil)
	require.Error(t, err)
	require.Equal(t, errclass.Poison, Classify(err), "%v", err)
	var classified *errclass.Error
	require.ErrorAs(t, err, &classified)
	require.Equal(t, errclass.Poison, classified.Class)
	require.Contains(t, err.Error(), "22003")
	require.Zero(t, countEvents(t, s.Pool(), corr))
}

func TestWriteCreatesOldPartitionOnDemand(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	corr := "write-old-" + uuid.NewString()
	old := time.Date(1999, 3, 15, 12, 30, 0, 0, time.UTC)
	older := time.Date(1987, 11, 30, 23, 59, 59, 999999000, time.UTC)
	names := []string{PartitionName(old), PartitionName(older)}
	require.Equal(t, []string{"audit_events_p199903", "audit_events_p198711"}, names)
	dropPartitions(t, s.Pool(), names...)
	t.Cleanup(func() {
		// t.Context is over by now.
		for _, name := range names {
			_, err := s.Pool().Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
			require.NoError(t, err)
		}
	})
	require.False(t, partitionExists(t, s.Pool(), names[0]))

	e1, e2 := testEvent(corr, old), testEvent(corr, older)
	res, err := s.Write(ctx, []audit.Event{e1, e2}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 2}, res)
	for i, name := range names {
		require.True(t, partitionExists(t, s.Pool(), name), name)
		require.True(t, partitionHolds(t, s.Pool(), []uuid.UUID{e1.EventID, e2.EventID}[i], name))
	}
	// Only the months of the rows, not every month in between.
	require.False(t, partitionExists(t, s.Pool(), "audit_events_p199001"))

	// A partition dropped behind the store's back (retention) makes a
	// write of that month fail as Failed while the cache says it exists;
	// Write then forgets the cache and tries once more, which creates the
	// partition again.
	dropPartitions(t, s.Pool(), names[0])
	e3 := testEvent(corr, old)
	_, err = s.writeOnce(ctx, []audit.Event{e3}, nil, false)
	require.Error(t, err)
	require.Equal(t, errclass.Failed, Classify(err), "%v", err)
	require.True(t, noPartitionForRow(err), "%v", err)
	require.False(t, partitionExists(t, s.Pool(), names[0]), "one attempt trusts the cache")
	res, err = s.Write(ctx, []audit.Event{e3}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 1}, res)
	require.True(t, partitionHolds(t, s.Pool(), e3.EventID, names[0]))
}

func TestWriteLargeBatch(t *testing.T) {
	s := openStore(t, pg.URL())
	corr := "write-large-" + uuid.NewString()
	events := make([]audit.Event, 5000)
	for i := range events {
		events[i] = testEvent(corr, time.Now().Add(-time.Duration(i)*time.Second))
		events[i].EventData = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
	}
	res, err := s.Write(t.Context(), events, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 5000}, res)
	require.Equal(t, 5000, countEvents(t, s.Pool(), corr))
}
