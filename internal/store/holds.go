package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors of the legal hold operations; the API answers them 404 and 409.
var (
	// ErrNothingToHold: no event of the correlation_id is stored and no
	// hold is in force on it (the seed system's 404).
	ErrNothingToHold = errors.New("no events and no legal hold for this correlation_id")
	// ErrHeld: a hold on the correlation_id is already in force.
	ErrHeld = errors.New("a legal hold is already in force for this correlation_id")
	// ErrNotHeld: no hold on the correlation_id is in force.
	ErrNotHeld = errors.New("no legal hold is in force for this correlation_id")
)

// Hold is a legal hold in force (SPEC 10).
type Hold struct {
	CorrelationID string
	Reason        string
	PlacedBy      string
	PlacedAt      time.Time
	// EventsAffected counts the correlation_id's events stored when the
	// hold was placed; the hold covers those stored later too.
	EventsAffected int64
}

// Release is a hold taken off.
type Release struct {
	CorrelationID  string
	Reason         string
	ReleasedBy     string
	ReleasedAt     time.Time
	EventsReleased int64
}

// Both operations lock legal_holds before they read audit_events, the
// order audit_events_retention_drop takes its locks in (partition, then
// legal_holds, then audit_events), so the two never deadlock; and a drop
// that saw no hold commits before a hold placed meanwhile is written.
const lockHolds = `LOCK TABLE legal_holds IN ROW EXCLUSIVE MODE`

// countHoldEvents counts a correlation_id's stored events: one descent of
// the correlation_id index per partition.
const countHoldEvents = `SELECT count(*) FROM audit_events WHERE correlation_id = $1`

// PlaceHold puts a hold on correlationID, on behalf of placedBy. record
// runs inside the transaction, after the hold is written and before it is
// committed, so that a hold is never in force without the audit event
// that records it: when record fails, nothing is placed. Errors are
// ErrNothingToHold, ErrHeld or a database error.
func (s *Store) PlaceHold(ctx context.Context, correlationID, reason, placedBy string, record func(Hold) error) (Hold, error) {
	h := Hold{CorrelationID: correlationID, Reason: reason, PlacedBy: placedBy}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockHolds); err != nil {
			return err
		}
		var held bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM legal_holds WHERE correlation_id = $1 AND released_at IS NULL)`,
			correlationID).Scan(&held); err != nil {
			return err
		}
		if held {
			return ErrHeld
		}
		if err := tx.QueryRow(ctx, countHoldEvents, correlationID).Scan(&h.EventsAffected); err != nil {
			return err
		}
		if h.EventsAffected == 0 {
			return ErrNothingToHold
		}
		if err := tx.QueryRow(ctx, `INSERT INTO legal_holds (correlation_id, reason, placed_by, events_affected)
			VALUES ($1, $2, $3, $4) RETURNING placed_at`, correlationID, reason, placedBy, h.EventsAffected).Scan(&h.PlacedAt); err != nil {
			return err
		}
		h.PlacedAt = h.PlacedAt.UTC()
		return record(h)
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		// A concurrent placement committed first (legal_holds_in_force_idx).
		return Hold{}, ErrHeld
	case errors.Is(err, ErrHeld), errors.Is(err, ErrNothingToHold):
		return Hold{}, err
	case err != nil:
		return Hold{}, fmt.Errorf("place legal hold: %w", err)
	}
	return h, nil
}

// ReleaseHold takes the hold on correlationID off, on behalf of
// releasedBy, keeping it in the history. record runs inside the
// transaction as for PlaceHold. Errors are ErrNotHeld or a database error.
func (s *Store) ReleaseHold(ctx context.Context, correlationID, reason, releasedBy string, record func(Release) error) (Release, error) {
	r := Release{CorrelationID: correlationID, Reason: reason, ReleasedBy: releasedBy}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockHolds); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, countHoldEvents, correlationID).Scan(&r.EventsReleased); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `UPDATE legal_holds SET released_by = $2, released_at = now(), release_reason = $3, events_released = $4
			WHERE correlation_id = $1 AND released_at IS NULL RETURNING released_at`,
			correlationID, releasedBy, reason, r.EventsReleased).Scan(&r.ReleasedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotHeld
		}
		if err != nil {
			return err
		}
		r.ReleasedAt = r.ReleasedAt.UTC()
		return record(r)
	})
	switch {
	case errors.Is(err, ErrNotHeld):
		return Release{}, err
	case err != nil:
		return Release{}, fmt.Errorf("release legal hold: %w", err)
	}
	return r, nil
}

// Holds lists the holds in force, oldest first.
func (s *Store) Holds(ctx context.Context) ([]Hold, error) {
	rows, err := s.pool.Query(ctx, `SELECT correlation_id, reason, placed_by, placed_at, events_affected
		FROM legal_holds WHERE released_at IS NULL ORDER BY placed_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	holds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Hold, error) {
		var h Hold
		err := row.Scan(&h.CorrelationID, &h.Reason, &h.PlacedBy, &h.PlacedAt, &h.EventsAffected)
		h.PlacedAt = h.PlacedAt.UTC()
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	return holds, nil
}
