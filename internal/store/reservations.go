package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
)

// DefaultReservationTTL is how long a notification_id stays held for a
// request whose record was never stored: long enough that a record Kafka
// did take (a 503 that timed out) is stored before another request may
// take the notification_id over, unless the writers were down for a day.
const DefaultReservationTTL = 24 * time.Hour

// reservationPruneInterval: how often RunReservationPruning deletes expired
// holds. An hour's worth is a cheap indexed delete, and an expired hold
// answers like a free one meanwhile.
const reservationPruneInterval = time.Hour

// ReserveNotification holds notificationID for a request whose record has
// the given content digest (audit.Notification.ContentDigest), in one round
// trip: see migration 000004 for the rules. at becomes the record's
// created_at when the hold is new.
//
// A database error means the check could not be made (ingest-api answers
// 202 and lets the writer de-duplicate); callers should bound ctx, since a
// connection to a host that vanished without closing it waits for ctx.
func (s *Store) ReserveNotification(ctx context.Context, notificationID string, digest [sha256.Size]byte, at time.Time) (audit.Reservation, error) {
	var outcome string
	var id *int64
	var createdAt *time.Time
	err := s.pool.QueryRow(ctx, `SELECT outcome, id, created_at FROM notification_reserve($1, $2, $3, $4)`,
		notificationID, digest[:], at, s.reservationTTL).Scan(&outcome, &id, &createdAt)
	if err != nil {
		return audit.Reservation{}, fmt.Errorf("reserve notification id: %w", err)
	}
	var r audit.Reservation
	switch outcome {
	case "reserved":
		r.State = audit.Reserved
	case "retried":
		r.State = audit.Retried
	case "held":
		return audit.Reservation{State: audit.HeldByOther}, nil
	case "stored":
		return audit.Reservation{State: audit.Stored}, nil
	default:
		return audit.Reservation{}, fmt.Errorf("reserve notification id: unknown outcome %q", outcome)
	}
	if id == nil || createdAt == nil {
		return audit.Reservation{}, fmt.Errorf("reserve notification id: %s without an id", outcome)
	}
	r.ID, r.CreatedAt = *id, createdAt.UTC()
	return r, nil
}

// ReleaseNotification gives up the hold on notificationID taken with id,
// for a record that Kafka certainly did not take: the notification_id is
// free again at once. A hold taken over since (another id) is left alone.
func (s *Store) ReleaseNotification(ctx context.Context, notificationID string, id int64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM notification_reservations WHERE notification_id = $1 AND id = $2`, notificationID, id); err != nil {
		return fmt.Errorf("release notification id: %w", err)
	}
	return nil
}

// PruneReservations deletes the holds older than the TTL and returns how
// many: their records are stored by now (notification_audit answers for
// them) or never will be.
func (s *Store) PruneReservations(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM notification_reservations WHERE reserved_at < now() - $1::interval`, s.reservationTTL)
	if err != nil {
		return 0, fmt.Errorf("prune notification reservations: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RunReservationPruning runs PruneReservations at once and then hourly
// until ctx ends (then it returns nil); a failure is logged and tried again
// a minute later.
func (s *Store) RunReservationPruning(ctx context.Context) error {
	return s.runPeriodically(ctx, reservationPruneInterval, "notification reservation pruning", func(ctx context.Context) error {
		n, err := s.PruneReservations(ctx)
		if n > 0 {
			s.log.Info("expired notification reservations deleted", zap.Int64("reservations", n))
		}
		return err
	})
}
