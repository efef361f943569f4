package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
)

// WriteResult counts what one Write stored and what it skipped as already
// stored (or repeated within the call), and lists the events it refused as
// conflicts. Every event is in exactly one of Events, EventDuplicates and
// EventConflicts.
type WriteResult struct {
	Events          int
	EventDuplicates int
	// EventDuplicatesUnverified counts, among EventDuplicates, those whose
	// stored row has no content digest (stored before migration 000003):
	// taken as duplicates, since they cannot be compared.
	EventDuplicatesUnverified int
	EventConflicts            []Conflict
	Notifications             int
	NotificationDuplicates    int
	// ChainHeads counts the hash chains the stored events moved (0 with
	// the chain disabled).
	ChainHeads int
	// ChainRaces counts the times the batch was written again because
	// another writer moved one of its chain heads first.
	ChainRaces int
}

// copyFields are the event fields COPY writes, those of the request and
// those the writer decides (PostgreSQL computes event_date, and ingested_at
// defaults to now()), and eventColumns their columns.
var copyFields, eventColumns = func() ([]audit.Field, []string) {
	var fields []audit.Field
	var columns []string
	for _, f := range audit.EventFields() {
		if f.Source != audit.Database {
			fields = append(fields, f)
			columns = append(columns, f.Name)
		}
	}
	return fields, columns
}()

// EventColumns returns the audit_events columns that COPY fills, in the
// order of EventRow's values.
func EventColumns() []string { return slices.Clone(eventColumns) }

// EventRow returns the values of e for EventColumns, typed as COPY encodes
// them fastest.
func EventRow(e *audit.Event) []any {
	row := make([]any, len(copyFields))
	fillEventRow(row, e)
	return row
}

// fillEventRow sets row (len(EventColumns())) to the values of e.
func fillEventRow(row []any, e *audit.Event) {
	for i := range copyFields {
		f := &copyFields[i]
		switch f.Kind {
		case audit.KindText, audit.KindEnum:
			row[i] = *f.Str(e)
		case audit.KindOptText:
			row[i] = *f.OptStr(e)
		case audit.KindTimestamp:
			row[i] = *f.Time(e)
		case audit.KindID:
			row[i] = [16]byte(*f.UUID(e))
		case audit.KindOptUUID:
			row[i] = nullableUUID(*f.OptUUID(e))
		case audit.KindOptCount:
			row[i] = *f.OptInt(e)
		case audit.KindObject:
			row[i] = []byte(*f.Raw(e))
		case audit.KindOptAddr:
			row[i] = *f.Addr(e) // the zero Addr encodes as NULL
		case audit.KindFlag:
			row[i] = *f.Flag(e)
		case audit.KindOptInt:
			row[i] = *f.OptInt32(e)
		case audit.KindOptHash:
			// pgx writes a nil slice as NULL and an empty one as an empty
			// bytea: previous_event_hash of chain_seq 1.
			row[i] = *f.Bytes(e)
		case audit.KindOptSmallInt:
			row[i] = *f.OptSmallInt(e)
		default:
			panic("store: " + f.Name + ": no COPY rule for its kind")
		}
	}
}

// eventRows returns the COPY rows of events.
func eventRows(events []*audit.Event) [][]any {
	rows := make([][]any, len(events))
	for i, e := range events {
		rows[i] = EventRow(e)
		injectRowFault(e, rows[i])
	}
	return rows
}

var notificationColumns = []string{
	"id", "notification_id", "remediation_id", "recipient", "channel", "message_summary", "status",
	"sent_at", "delivery_status", "error_message", "escalation_level", "created_at", "updated_at", "submitted_by",
}

// Inserting the ids first (register.go), with ON CONFLICT DO NOTHING,
// makes de-duplication exact across partitions: only ids that were new
// come back, and only their rows are copied into audit_events, straight
// into the partitions. Measured against a staging table followed by
// INSERT ... SELECT, this costs PostgreSQL about a quarter less CPU per
// row, the same as a bare COPY (bench/README.md).
const (
	// Notifications are few; a staging table keeps their SQL simple. It
	// lives per connection, empties itself at every commit and has no
	// indexes, so COPY into it is cheap; the real table's rules apply on
	// the INSERT.
	createNotificationStage = `CREATE TEMP TABLE IF NOT EXISTS notification_audit_stage (
		id bigint, notification_id text, remediation_id text, recipient text, channel text,
		message_summary text, status text, sent_at timestamptz, delivery_status text,
		error_message text, escalation_level smallint, created_at timestamptz, updated_at timestamptz,
		submitted_by text)
		ON COMMIT DELETE ROWS`

	// Records published without the API's duplicate check (202) or by direct
	// producers have no id: they take one from the sequence the API reserves
	// from. ON CONFLICT names notification_id, so a clash on id is an error,
	// not a silently dropped record.
	insertNotifications = `INSERT INTO notification_audit (id, notification_id, remediation_id, recipient,
		channel, message_summary, status, sent_at, delivery_status, error_message, escalation_level,
		created_at, updated_at, submitted_by)
	SELECT COALESCE(id, nextval('notification_audit_id_seq')), notification_id, remediation_id, recipient,
		channel, message_summary, status, sent_at, delivery_status, error_message, escalation_level,
		COALESCE(created_at, now()), COALESCE(updated_at, created_at, now()), submitted_by
	FROM notification_audit_stage
	ON CONFLICT (notification_id) DO NOTHING`
)

// writeOnce stores events and notifications in one transaction, skipping
// every one whose event_id / notification_id is already stored, and
// leaving out (as conflicts) the events whose event_id is stored with other
// content. Either all of the new rows are committed or none is. Partitions
// for the events' months are created first if missing.
//
// With lockHeads the chain heads are locked before the events are linked
// (after a race), instead of checked when they move.
func (s *Store) writeOnce(ctx context.Context, events []audit.Event, notifications []audit.Notification, lockHeads bool) (WriteResult, error) {
	var res WriteResult
	notifications, res.NotificationDuplicates = uniqueNotifications(notifications)
	if err := s.ensureEventPartitions(ctx, events); err != nil {
		return WriteResult{}, err
	}
	var links *chainLinks
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(events) > 0 {
			var r registered
			var err error
			r, links, err = copyEvents(ctx, tx, s.chain, s.heads, lockHeads, newEventBatch(events))
			if err != nil {
				return err
			}
			res.Events, res.EventDuplicates = len(r.fresh), r.duplicates
			res.EventDuplicatesUnverified, res.EventConflicts = r.unverified, r.conflicts
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
	if links != nil {
		// Only committed heads are remembered; after a failure the
		// batch's chains may have moved either way.
		if err != nil {
			s.heads.forget(links.ids)
		} else {
			s.heads.remember(&links.moved)
			s.heads.remember(&links.started)
			res.ChainHeads = links.heads()
		}
	}
	if err != nil {
		return WriteResult{}, fmt.Errorf("write batch: %w", err)
	}
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

// forgetPartitions drops the cache of months known to have a partition, for
// when a write reports a missing one (a partition dropped by retention).
func (s *Store) forgetPartitions() { s.knownMonths.Clear() }

// copyEvents registers the batch's ids and copies the rows of the new
// ones; with keys, it first links them to their hash chains, in batch
// order, and moves the chains' heads after the copy. It returns what the
// register found and the chains' links (nil without keys).
func copyEvents(ctx context.Context, tx pgx.Tx, keys *integrity.Keys, heads *headCache, lock bool, b *eventBatch) (registered, *chainLinks, error) {
	r, err := b.register(ctx, tx)
	if err != nil || len(r.fresh) == 0 {
		return r, nil, err
	}
	stored := make([]*audit.Event, len(r.fresh))
	for j, i := range r.fresh {
		stored[j] = &b.events[i]
	}
	var links *chainLinks
	if keys != nil {
		if links, err = linkChains(ctx, tx, keys, heads, lock, stored); err != nil {
			return registered{}, nil, err
		}
	}
	// Each row is built as COPY streams it, into one slice reused for the
	// next: the batch's rows built at once were the largest thing a lane
	// held in memory while its transaction ran (pgx encodes a row before
	// it asks for the next).
	row := make([]any, len(copyFields))
	src := pgx.CopyFromSlice(len(stored), func(i int) ([]any, error) {
		fillEventRow(row, stored[i])
		injectRowFault(stored[i], row)
		return row, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, eventColumns, src); err != nil {
		if rerr := unencodable(eventRows(stored), eventColumns, eventOIDs); rerr != nil {
			err = rerr
		}
		return registered{}, links, fmt.Errorf("copy events: %w", err)
	}
	if links != nil {
		if err := links.move(ctx, tx); err != nil {
			return registered{}, links, err
		}
	}
	return r, links, nil
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
			nullableTime(n.CreatedAt), nullableTime(n.UpdatedAt), n.SubmittedBy,
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"notification_audit_stage"}, notificationColumns, pgx.CopyFromRows(rows)); err != nil {
		if rerr := unencodable(rows, notificationColumns, notificationStageOIDs); rerr != nil {
			err = rerr
		}
		return 0, fmt.Errorf("copy notifications: %w", err)
	}
	tag, err := tx.Exec(ctx, insertNotifications)
	if err != nil {
		return 0, fmt.Errorf("insert notifications: %w", err)
	}
	return int(tag.RowsAffected()), nil
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
