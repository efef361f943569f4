package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/integrity"
)

// checkpointLockKey is the bytes "auditcpt" as a bigint: the
// transaction-level advisory lock under which one checkpointer at a time,
// of any writer, takes the next ids of the one checkpoint sequence.
const checkpointLockKey int64 = 7022629598041174132

// PreviousCheckpoint is the last recorded checkpoint, which the next one
// follows: ID 0 and a nil Hash before the first.
type PreviousCheckpoint struct {
	ID   int64
	Hash []byte
}

// CheckpointSigner builds the signed checkpoints covering heads (sorted by
// correlation_id, never empty), following prev: ids prev.ID+1, +2, ...,
// each naming the hash of the one before.
type CheckpointSigner func(prev PreviousCheckpoint, heads []integrity.CheckpointHead) ([]*integrity.SignedCheckpoint, error)

// StoredCheckpoint is a recorded checkpoint's document.
type StoredCheckpoint struct {
	ID        int64
	CreatedAt time.Time
	Document  []byte
}

const (
	lastCheckpoint = `SELECT id, hash FROM integrity_checkpoints ORDER BY id DESC LIMIT 1`

	// The oldest pending heads first, so none waits for ever behind busy
	// chains; then they are locked in correlation_id order, the writers'
	// order, so a checkpointer and a writer never deadlock. A head a
	// writer moves meanwhile is read as it is once that writer commits.
	pendingHeads = `SELECT correlation_id FROM chain_heads WHERE checkpoint_id IS NULL
	ORDER BY pending_since LIMIT $1`
	lockPendingHeads = `SELECT correlation_id, chain_seq, event_hash FROM chain_heads
	WHERE correlation_id = ANY($1::text[]) AND checkpoint_id IS NULL
	ORDER BY correlation_id FOR UPDATE`

	insertCheckpoints = `INSERT INTO integrity_checkpoints (id, created_at, heads, previous_hash, hash, document)
	SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::integer[], $4::bytea[], $5::bytea[], $6::bytea[])`

	// last_checkpoint_id stays when a writer moves the head: it is the
	// anchor verify-chain looks up.
	coverHeads = `UPDATE chain_heads AS h SET checkpoint_id = u.checkpoint, last_checkpoint_id = u.checkpoint, pending_since = NULL
	FROM unnest($1::text[], $2::bigint[]) AS u(id, checkpoint)
	WHERE h.correlation_id = u.id`

	unpublishedCheckpoints = `SELECT id, created_at, document FROM integrity_checkpoints
	WHERE published_at IS NULL ORDER BY id`

	markPublished = `UPDATE integrity_checkpoints SET published_at = now()
	WHERE id = ANY($1::bigint[]) AND published_at IS NULL`

	// The checkpoint lag: how long the oldest head move has waited to be
	// covered by a checkpoint that Kafka has, the recorded but not yet
	// published ones included.
	checkpointLag = `SELECT GREATEST(
		(SELECT extract(epoch FROM now() - min(pending_since)) FROM chain_heads WHERE checkpoint_id IS NULL),
		(SELECT extract(epoch FROM now() - min(created_at)) FROM integrity_checkpoints WHERE published_at IS NULL),
		0)::float8`
)

// RecordCheckpoints covers up to maxHeads pending chain heads (those that
// moved since their last checkpoint) with new checkpoints, in one
// transaction under the checkpoint advisory lock: it reads the last
// checkpoint, locks the heads, has sign build the checkpoints, records them
// and marks the heads as covered. It returns them in id order, or none when
// no head was pending. Publishing them is the caller's part
// (UnpublishedCheckpoints, MarkCheckpointsPublished).
func (s *Store) RecordCheckpoints(ctx context.Context, maxHeads int, sign CheckpointSigner) ([]*integrity.SignedCheckpoint, error) {
	var out []*integrity.SignedCheckpoint
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, checkpointLockKey); err != nil {
			return fmt.Errorf("checkpoint lock: %w", err)
		}
		var prev PreviousCheckpoint
		if err := tx.QueryRow(ctx, lastCheckpoint).Scan(&prev.ID, &prev.Hash); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("last checkpoint: %w", err)
		}
		rows, err := tx.Query(ctx, pendingHeads, maxHeads)
		if err != nil {
			return fmt.Errorf("pending chain heads: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("pending chain heads: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, lockPendingHeads, ids)
		if err != nil {
			return fmt.Errorf("lock pending chain heads: %w", err)
		}
		heads, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (integrity.CheckpointHead, error) {
			var h integrity.CheckpointHead
			err := row.Scan(&h.CorrelationID, &h.Seq, &h.Hash)
			return h, err
		})
		if err != nil {
			return fmt.Errorf("lock pending chain heads: %w", err)
		}
		if len(heads) == 0 {
			return nil // covered by another checkpointer while this one waited
		}
		if out, err = sign(prev, heads); err != nil {
			return err
		}
		return recordCheckpoints(ctx, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("record checkpoint: %w", err)
	}
	return out, nil
}

func recordCheckpoints(ctx context.Context, tx pgx.Tx, cps []*integrity.SignedCheckpoint) error {
	n := len(cps)
	ids, times, counts := make([]int64, n), make([]time.Time, n), make([]int32, n)
	prevs, hashes, docs := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	var headIDs []string
	var covering []int64
	for i, c := range cps {
		ids[i], times[i], counts[i] = c.ID, c.Time, int32(len(c.Heads))
		prevs[i], hashes[i], docs[i] = c.PreviousHash, c.Hash, c.Document
		for _, h := range c.Heads {
			headIDs = append(headIDs, h.CorrelationID)
			covering = append(covering, c.ID)
		}
	}
	if _, err := tx.Exec(ctx, insertCheckpoints, ids, times, counts, prevs, hashes, docs); err != nil {
		return fmt.Errorf("insert checkpoints: %w", err)
	}
	if _, err := tx.Exec(ctx, coverHeads, headIDs, covering); err != nil {
		return fmt.Errorf("cover chain heads: %w", err)
	}
	return nil
}

// UnpublishedCheckpoints returns the recorded checkpoints that Kafka has
// not acknowledged yet, oldest first: after a crash between recording and
// publishing, or a failed publish.
func (s *Store) UnpublishedCheckpoints(ctx context.Context) ([]StoredCheckpoint, error) {
	rows, err := s.pool.Query(ctx, unpublishedCheckpoints)
	if err != nil {
		return nil, fmt.Errorf("unpublished checkpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[StoredCheckpoint])
	if err != nil {
		return nil, fmt.Errorf("unpublished checkpoints: %w", err)
	}
	return out, nil
}

// MarkCheckpointsPublished records that Kafka acknowledged the checkpoints.
func (s *Store) MarkCheckpointsPublished(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, markPublished, ids); err != nil {
		return fmt.Errorf("mark checkpoints published: %w", err)
	}
	return nil
}

// CheckpointLag is how long the oldest chain head move has waited for a
// checkpoint that Kafka has acknowledged; 0 when every head is covered.
func (s *Store) CheckpointLag(ctx context.Context) (time.Duration, error) {
	var seconds float64
	if err := s.pool.QueryRow(ctx, checkpointLag).Scan(&seconds); err != nil {
		return 0, fmt.Errorf("checkpoint lag: %w", err)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}
