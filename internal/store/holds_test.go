package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
)

func noRecord[T any](T) error { return nil }

func TestLegalHolds(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	corr := "hold-" + uuid.NewString()

	_, err := s.PlaceHold(ctx, corr, "r", "legal", noRecord[Hold])
	require.ErrorIs(t, err, ErrNothingToHold, "no events and no hold")
	_, err = s.ReleaseHold(ctx, corr, "r", "legal", noRecord[Release])
	require.ErrorIs(t, err, ErrNotHeld)

	_, err = s.Write(ctx, []audit.Event{testEvent(corr, time.Now()), testEvent(corr, time.Now())}, nil)
	require.NoError(t, err)

	// A placement whose audit event cannot be published does not happen.
	boom := errors.New("kafka down")
	_, err = s.PlaceHold(ctx, corr, "r", "legal", func(Hold) error { return boom })
	require.ErrorIs(t, err, boom)
	holds, err := s.Holds(ctx)
	require.NoError(t, err)
	require.NotContains(t, holdIDs(holds), corr)

	var recorded Hold
	h, err := s.PlaceHold(ctx, corr, "litigation 42", "legal", func(h Hold) error { recorded = h; return nil })
	require.NoError(t, err)
	require.Equal(t, recorded, h, "the audit event records what is committed")
	require.EqualValues(t, 2, h.EventsAffected)
	require.Equal(t, "legal", h.PlacedBy)
	require.WithinDuration(t, time.Now(), h.PlacedAt, time.Minute)
	_, err = s.PlaceHold(ctx, corr, "again", "legal", noRecord[Hold])
	require.ErrorIs(t, err, ErrHeld)

	holds, err = s.Holds(ctx)
	require.NoError(t, err)
	require.Contains(t, holds, h)

	// Later events are covered too, and counted at release.
	_, err = s.Write(ctx, []audit.Event{testEvent(corr, time.Now())}, nil)
	require.NoError(t, err)
	_, err = s.ReleaseHold(ctx, corr, "done", "legal-2", func(Release) error { return boom })
	require.ErrorIs(t, err, boom)
	rel, err := s.ReleaseHold(ctx, corr, "case closed", "legal-2", noRecord[Release])
	require.NoError(t, err)
	require.EqualValues(t, 3, rel.EventsReleased)
	require.Equal(t, "legal-2", rel.ReleasedBy)
	_, err = s.ReleaseHold(ctx, corr, "again", "legal-2", noRecord[Release])
	require.ErrorIs(t, err, ErrNotHeld)

	// The history keeps both.
	var placedBy, releasedBy, reason string
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT placed_by, released_by, release_reason FROM legal_holds WHERE correlation_id = $1`,
		corr).Scan(&placedBy, &releasedBy, &reason))
	require.Equal(t, []string{"legal", "legal-2", "case closed"}, []string{placedBy, releasedBy, reason})

	// A new hold on the same correlation_id is a new entry.
	_, err = s.PlaceHold(ctx, corr, "new matter", "legal", noRecord[Hold])
	require.NoError(t, err)
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM legal_holds WHERE correlation_id = $1`, corr).Scan(&n))
	require.Equal(t, 2, n)
}

// TestLegalHoldConcurrentPlacements: of several placements at once, one
// succeeds and the others are told the hold is in force.
func TestLegalHoldConcurrentPlacements(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	corr := "hold-" + uuid.NewString()
	_, err := s.Write(ctx, []audit.Event{testEvent(corr, time.Now())}, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.PlaceHold(ctx, corr, "r", "legal", noRecord[Hold]) })
	}
	wg.Wait()
	var placed int
	for _, err := range errs {
		if err == nil {
			placed++
			continue
		}
		require.ErrorIs(t, err, ErrHeld)
	}
	require.Equal(t, 1, placed)
}

func holdIDs(holds []Hold) []string {
	var out []string
	for _, h := range holds {
		out = append(out, h.CorrelationID)
	}
	return out
}

// TestHistoryIsAppendOnly: holds, retention records and notification
// identities cannot be rewritten, by any role.
func TestHistoryIsAppendOnly(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	corr := "hold-" + uuid.NewString()
	_, err := s.Write(ctx, []audit.Event{testEvent(corr, time.Now())}, []audit.Notification{testNotification(corr)})
	require.NoError(t, err)
	_, err = s.PlaceHold(ctx, corr, "r", "legal", noRecord[Hold])
	require.NoError(t, err)

	for _, stmt := range []string{
		`UPDATE legal_holds SET reason = 'rewritten' WHERE correlation_id = $1`,
		`UPDATE legal_holds SET placed_by = 'someone else' WHERE correlation_id = $1`,
		`DELETE FROM legal_holds WHERE correlation_id = $1`,
		`UPDATE notification_audit SET id = id + 1000000 WHERE notification_id = $1`,
		`UPDATE notification_audit SET notification_id = 'other' WHERE notification_id = $1`,
		`UPDATE notification_audit SET created_at = now() WHERE notification_id = $1`,
		`UPDATE notification_audit SET submitted_by = 'mallory' WHERE notification_id = $1`,
	} {
		_, err := s.Pool().Exec(ctx, stmt, corr)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, stmt)
		require.Equal(t, "42501", pgErr.Code, "%s: %v", stmt, err)
	}
	// A record as the retention function writes it (rows triggers fire
	// only where there are rows).
	var dropID int64
	require.NoError(t, s.Pool().QueryRow(ctx, `INSERT INTO retention_drops (partition, period_start, period_end, events, default_days, event_id)
		VALUES ('audit_events_p200001', '2000-01-01', '2000-02-01', 1, 365, gen_random_uuid()) RETURNING id`).Scan(&dropID))
	_, err = s.Pool().Exec(ctx, `INSERT INTO retention_dropped_chains (correlation_id, drop_id, events, first_timestamp, last_timestamp)
		VALUES ($1, $2, 1, '2000-01-01', '2000-01-01')`, corr, dropID)
	require.NoError(t, err)
	for _, stmt := range []string{
		`TRUNCATE legal_holds`, `TRUNCATE retention_drops CASCADE`, `TRUNCATE retention_dropped_chains`,
		`DELETE FROM retention_drops`, `UPDATE retention_drops SET events = 0`,
		`DELETE FROM retention_dropped_chains`, `UPDATE retention_dropped_chains SET events = 0`,
	} {
		_, err := s.Pool().Exec(ctx, stmt)
		require.ErrorContains(t, err, "not allowed", stmt)
	}

	// A release completes the entry, once.
	_, err = s.ReleaseHold(ctx, corr, "done", "legal", noRecord[Release])
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `UPDATE legal_holds SET released_by = 'someone else' WHERE correlation_id = $1`, corr)
	require.ErrorContains(t, err, "only ever released, once")
	// A notification's delivery may still be updated.
	_, err = s.Pool().Exec(ctx, `UPDATE notification_audit SET status = 'failed', updated_at = now() WHERE notification_id = $1`, corr)
	require.NoError(t, err)
}
