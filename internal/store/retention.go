package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditstream/auditstream/internal/errclass"
)

// retentionLockKey is the session advisory lock a retention run holds, so
// that of several writers one runs it and the others skip: the bytes
// "auditret" as a bigint (audit_events_ensure_partition's is "auditpar").
const retentionLockKey int64 = 7022629598042154356

// Outcomes of audit_events_retention_drop worth acting on; the others
// ("retained", "missing") change nothing.
const (
	RetentionDropped = "dropped"
	RetentionHeld    = "held"
)

// PartitionOutcome is what retention did with one monthly partition.
type PartitionOutcome struct {
	Partition  string
	Start, End time.Time
	// Outcome is RetentionDropped or RetentionHeld.
	Outcome string
	// Events is how many events a dropped partition held.
	Events int64
	// EventID is the id of the audit event that records a drop, as
	// retention_drops keeps it.
	EventID uuid.UUID
	// Held lists the correlation ids whose legal holds keep a partition
	// whose events are all past their retention.
	Held []string
}

// RetentionRun is one pass over the partitions.
type RetentionRun struct {
	// Skipped: another process held the retention lock, so this one did
	// nothing.
	Skipped bool
	// Checked counts the partitions old enough to ask about.
	Checked int
	// Outcomes are the partitions dropped and those kept by a hold.
	Outcomes []PartitionOutcome
}

// RunRetention drops every monthly partition of audit_events whose events
// are all past their retention (their own retention_days, or defaultDays)
// and that no legal hold keeps, through audit_events_retention_drop (see
// migration 000007), one transaction per partition. newID names the audit
// event that will record each drop; it is stored with the drop.
//
// Only one process runs it at a time (a session advisory lock); the others
// return Skipped. A partition whose locks could not be had in time (a long
// query reading it, a writer storing into it) is left for the next run and
// reported in the error, joined with any other; the run goes on with the
// next. An outage ends the run. Outcomes holds what was done either way.
func (s *Store) RunRetention(ctx context.Context, defaultDays int, newID func() uuid.UUID) (RetentionRun, error) {
	var run RetentionRun
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return run, fmt.Errorf("retention: %w", err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, retentionLockKey).Scan(&locked); err != nil {
		conn.Release()
		return run, fmt.Errorf("retention lock: %w", err)
	}
	if !locked {
		conn.Release()
		run.Skipped = true
		return run, nil
	}
	defer s.unlockRetention(conn)

	months, err := partitionMonths(ctx, conn)
	if err != nil {
		return run, err
	}
	// An event may keep its partition for as little as one day after the
	// partition's end: nothing younger is worth asking about.
	horizon := time.Now().Add(-24 * time.Hour)
	var errs []error
	for _, m := range months {
		end := m.AddDate(0, 1, 0)
		if end.After(horizon) {
			continue
		}
		run.Checked++
		o, err := dropIfExpired(ctx, conn, m, defaultDays, newID())
		if err != nil {
			if Classify(err) == errclass.Outage && !lockedOut(err) {
				return run, errors.Join(append(errs, err)...)
			}
			errs = append(errs, err)
			continue
		}
		if o.Outcome == RetentionDropped || o.Outcome == RetentionHeld {
			run.Outcomes = append(run.Outcomes, o)
		}
		if o.Outcome == RetentionDropped {
			// The next write into that month creates it again.
			s.knownMonths.Delete(m)
		}
	}
	return run, errors.Join(errs...)
}

// unlockRetention gives the lock back, or closes the connection (which
// frees the lock with the session) when it cannot.
func (s *Store) unlockRetention(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), s.pingTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, retentionLockKey); err != nil {
		_ = conn.Hijack().Close(ctx)
		return
	}
	conn.Release()
}

// lockedOut reports a lock that was not granted in time (55P03) or a
// deadlock PostgreSQL broke by cancelling the retention transaction
// (40P01): the partition is busy now, not the database gone.
func lockedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01")
}

// partitionMonths returns the month starts of the partitions of
// audit_events, oldest first. Names that audit_events_ensure_partition
// would not give are not its partitions and are left alone.
func partitionMonths(ctx context.Context, conn *pgxpool.Conn) ([]time.Time, error) {
	rows, err := conn.Query(ctx, `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audit_events'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	months := make([]time.Time, 0, len(names))
	for _, n := range names {
		if m, ok := partitionMonth(n); ok {
			months = append(months, m)
		}
	}
	return months, nil
}

// partitionMonth is the inverse of PartitionName.
func partitionMonth(name string) (time.Time, bool) {
	const prefix = "audit_events_p"
	if len(name) != len(prefix)+6 || name[:len(prefix)] != prefix {
		return time.Time{}, false
	}
	m, err := time.Parse("200601", name[len(prefix):])
	return m, err == nil
}

func dropIfExpired(ctx context.Context, conn *pgxpool.Conn, month time.Time, defaultDays int, eventID uuid.UUID) (PartitionOutcome, error) {
	o := PartitionOutcome{Partition: PartitionName(month), Start: month, End: month.AddDate(0, 1, 0)}
	var events, dropID *int64
	err := conn.QueryRow(ctx, `SELECT outcome, events, drop_id, held_correlation_ids FROM audit_events_retention_drop($1, $2, $3)`,
		month, defaultDays, [16]byte(eventID)).Scan(&o.Outcome, &events, &dropID, &o.Held)
	if err != nil {
		return o, fmt.Errorf("retention of %s: %w", o.Partition, err)
	}
	if o.Outcome == RetentionDropped {
		o.Events, o.EventID = *events, eventID
	}
	return o, nil
}

// DropRecord is a partition retention dropped, as retention_drops keeps it.
type DropRecord struct {
	Partition   string
	Start, End  time.Time
	DroppedAt   time.Time
	Events      int64
	DefaultDays int
	EventID     uuid.UUID
}

// UnrecordedDrops lists the drops of the last within whose audit event is
// not stored (not yet, or lost before Kafka took it), dropped at least a
// minute ago so that one published a moment ago has had time to arrive.
// Publishing them again is safe: the event keeps its id, so a copy that
// did arrive after all is a duplicate the writer skips.
func (s *Store) UnrecordedDrops(ctx context.Context, within time.Duration) ([]DropRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.partition, d.period_start, d.period_end, d.dropped_at, d.events, d.default_days, d.event_id
		FROM retention_drops d
		WHERE d.dropped_at >= now() - $1::interval AND d.dropped_at < now() - interval '1 minute'
		  AND NOT EXISTS (SELECT 1 FROM audit_event_ids i WHERE i.event_id = d.event_id)
		ORDER BY d.id`, within)
	if err != nil {
		return nil, fmt.Errorf("unrecorded drops: %w", err)
	}
	drops, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DropRecord, error) {
		var d DropRecord
		var id [16]byte
		err := row.Scan(&d.Partition, &d.Start, &d.End, &d.DroppedAt, &d.Events, &d.DefaultDays, &id)
		d.EventID = id
		d.Start, d.End, d.DroppedAt = d.Start.UTC(), d.End.UTC(), d.DroppedAt.UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("unrecorded drops: %w", err)
	}
	return drops, nil
}
