package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/auditstream/auditstream/internal/audit"
)

// WriteResult counts what one Write stored and what it skipped as already
// stored (or repeated within the call).
type WriteResult struct {
	Events                 int
	EventDuplicates        int
	Notifications          int
	NotificationDuplicates int
}

// eventColumns are the columns COPY fills; event_date is generated and
// ingested_at defaults to now().
var eventColumns = []string{
	"event_id", "event_timestamp", "version", "event_type", "event_category", "event_action",
	"event_outcome", "correlation_id", "actor_type", "actor_id", "resource_type", "resource_id",
	"parent_event_id", "namespace", "cluster_name", "severity", "duration_ms", "event_data",
}

var notificationColumns = []string{
	"id", "notification_id", "remediation_id", "recipient", "channel", "message_summary", "status",
	"sent_at", "delivery_status", "error_message", "escalation_level", "created_at", "updated_at",
}

// Staging tables live per connection and empty themselves at every commit.
// They have no indexes or constraints beyond the column types, so COPY into
// them is as cheap as COPY gets; the real tables' rules apply on the INSERT.
const (
	createEventStage = `CREATE TEMP TABLE IF NOT EXISTS audit_events_stage (
		event_id uuid, event_timestamp timestamptz, version text, event_type text, event_category text,
		event_action text, event_outcome text, correlation_id text, actor_type text, actor_id text,
		resource_type text, resource_id text, parent_event_id uuid, namespace text, cluster_name text,
		severity text, duration_ms bigint, event_data jsonb) ON COMMIT DELETE ROWS`

	// Inserting the ids first, with ON CONFLICT DO NOTHING, makes
	// de-duplication exact across partitions: only ids that were new come
	// back, and only their rows go into audit_events.
	insertEvents = `WITH new_ids AS (
		INSERT INTO audit_event_ids (event_id, event_timestamp)
		SELECT event_id, event_timestamp FROM audit_events_stage
		ON CONFLICT (event_id) DO NOTHING
		RETURNING event_id)
	INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action,
		event_outcome, correlation_id, actor_type, actor_id, resource_type, resource_id,
		parent_event_id, namespace, cluster_name, severity, duration_ms, event_data)
	SELECT s.event_id, s.event_timestamp, s.version, s.event_type, s.event_category, s.event_action,
		s.event_outcome, s.correlation_id, s.actor_type, s.actor_id, s.resource_type, s.resource_id,
		s.parent_event_id, s.namespace, s.cluster_name, s.severity, s.duration_ms, s.event_data
	FROM audit_events_stage s JOIN new_ids USING (event_id)`

	createNotificationStage = `CREATE TEMP TABLE IF NOT EXISTS notification_audit_stage (
		id bigint, notification_id text, remediation_id text, recipient text, channel text,
		message_summary text, status text, sent_at timestamptz, delivery_status text,
		error_message text, escalation_level smallint, created_at timestamptz, updated_at timestamptz)
		ON COMMIT DELETE ROWS`

	// Records published without the API's duplicate check (202) or by direct
	// producers have no id: they take one from the sequence the API reserves
	// from. ON CONFLICT names notification_id, so a clash on id is an error,
	// not a silently dropped record.
	insertNotifications = `INSERT INTO notification_audit (id, notification_id, remediation_id, recipient,
		channel, message_summary, status, sent_at, delivery_status, error_message, escalation_level,
		created_at, updated_at)
	SELECT COALESCE(id, nextval('notification_audit_id_seq')), notification_id, remediation_id, recipient,
		channel, message_summary, status, sent_at, delivery_status, error_message, escalation_level,
		COALESCE(created_at, now()), COALESCE(updated_at, created_at, now())
	FROM notification_audit_stage
	ON CONFLICT (notification_id) DO NOTHING`
)

// Write stores events and notifications in one transaction, skipping every
// one whose event_id / notification_id is already stored. Either all of the
// new rows are committed or none is. Partitions for the events' months are
// created first if missing.
func (s *Store) Write(ctx context.Context, events []audit.Event, notifications []audit.Notification) (WriteResult, error) {
	var res WriteResult
	events, res.EventDuplicates = uniqueEvents(events)
	notifications, res.NotificationDuplicates = uniqueNotifications(notifications)
	if err := s.ensureEventPartitions(ctx, events); err != nil {
		return WriteResult{}, err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(events) > 0 {
			n, err := copyEvents(ctx, tx, events)
			if err != nil {
				return err
			}
			res.Events = n
		}
		if len(notifications) > 0 {
			n, err := copyNotifications(ctx, tx, notifications)
			if err != nil {
				return err
			}
			res.Notifications = n
		}
		return nil
	})
	if err != nil {
		return WriteResult{}, fmt.Errorf("write batch: %w", err)
	}
	res.EventDuplicates += len(events) - res.Events
	res.NotificationDuplicates += len(notifications) - res.Notifications
	return res, nil
}

// ensureEventPartitions creates the partitions of the events' months that
// this process has not seen yet; after the first batch of a month this costs
// nothing.
func (s *Store) ensureEventPartitions(ctx context.Context, events []audit.Event) error {
	var missing []time.Time
	for i := range events {
		m := monthStart(events[i].EventTimestamp)
		if _, ok := s.knownMonths.Load(m); !ok {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := s.EnsurePartitionsFor(ctx, missing...); err != nil {
		return err
	}
	for _, m := range missing {
		s.knownMonths.Store(m, struct{}{})
	}
	return nil
}

// ForgetPartitions drops the cache of months known to have a partition, for
// when a write reports a missing one (a partition dropped by retention).
func (s *Store) ForgetPartitions() { s.knownMonths.Clear() }

func copyEvents(ctx context.Context, tx pgx.Tx, events []audit.Event) (int, error) {
	if _, err := tx.Exec(ctx, createEventStage); err != nil {
		return 0, fmt.Errorf("create event stage: %w", err)
	}
	rows := make([][]any, len(events))
	for i := range events {
		e := &events[i]
		rows[i] = []any{
			[16]byte(e.EventID), e.EventTimestamp, e.Version, e.EventType, e.EventCategory, e.EventAction,
			e.EventOutcome, e.CorrelationID, e.ActorType, e.ActorID, e.ResourceType, e.ResourceID,
			nullableUUID(e.ParentEventID), e.Namespace, e.ClusterName, e.Severity, e.DurationMS, []byte(e.EventData),
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events_stage"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("copy events: %w", err)
	}
	tag, err := tx.Exec(ctx, insertEvents)
	if err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func copyNotifications(ctx context.Context, tx pgx.Tx, ns []audit.Notification) (int, error) {
	if _, err := tx.Exec(ctx, createNotificationStage); err != nil {
		return 0, fmt.Errorf("create notification stage: %w", err)
	}
	rows := make([][]any, len(ns))
	for i := range ns {
		n := &ns[i]
		rows[i] = []any{
			nullableInt64(n.ID), n.NotificationID, n.RemediationID, n.Recipient, n.Channel, n.MessageSummary,
			n.Status, n.SentAt, n.DeliveryStatus, n.ErrorMessage, n.EscalationLevel,
			nullableTime(n.CreatedAt), nullableTime(n.UpdatedAt),
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"notification_audit_stage"}, notificationColumns, pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("copy notifications: %w", err)
	}
	tag, err := tx.Exec(ctx, insertNotifications)
	if err != nil {
		return 0, fmt.Errorf("insert notifications: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// uniqueEvents keeps the first of each event_id: a batch can hold the same
// record twice after a producer retry.
func uniqueEvents(events []audit.Event) ([]audit.Event, int) {
	seen := make(map[uuid.UUID]struct{}, len(events))
	out := events[:0:0]
	for _, e := range events {
		if _, dup := seen[e.EventID]; dup {
			continue
		}
		seen[e.EventID] = struct{}{}
		out = append(out, e)
	}
	return out, len(events) - len(out)
}

func uniqueNotifications(ns []audit.Notification) ([]audit.Notification, int) {
	seen := make(map[string]struct{}, len(ns))
	out := ns[:0:0]
	for _, n := range ns {
		if _, dup := seen[n.NotificationID]; dup {
			continue
		}
		seen[n.NotificationID] = struct{}{}
		out = append(out, n)
	}
	return out, len(ns) - len(out)
}

func nullableUUID(u *uuid.UUID) pgtype.UUID {
	if u == nil {
		return pgtype.UUID{}
	}
	return pgtype.UUID{Bytes: *u, Valid: true}
}

func nullableInt64(v int64) pgtype.Int8 { return pgtype.Int8{Int64: v, Valid: v != 0} }

func nullableTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}
