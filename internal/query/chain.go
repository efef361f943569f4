package query

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
)

// ChainState is what the database records about a chain apart from its
// events, read in the snapshot of its events (ReadChain).
type ChainState struct {
	// Head is the writer's chain_heads row; nil when the chain has none.
	Head *integrity.Head
	// Checkpoint is the signed checkpoint that last covered the chain, as
	// recorded (nil: none yet). Its document is unverified here.
	Checkpoint *Checkpoint
	// Dropped is what retention removed from the chain: one entry per
	// dropped partition that held chained events of it.
	Dropped []integrity.Dropped
}

// Checkpoint is a recorded checkpoint document.
type Checkpoint struct {
	ID          int64
	CreatedAt   time.Time
	Document    []byte
	PublishedAt *time.Time
}

const (
	chainStateSQL = `SELECT h.chain_seq, h.event_hash, c.id, c.created_at, c.document
	FROM chain_heads h LEFT JOIN integrity_checkpoints c ON c.id = COALESCE(h.last_checkpoint_id, h.checkpoint_id)
	WHERE h.correlation_id = $1`

	// What retention removed from the chain (migration 000007).
	droppedSQL = `SELECT min_chain_seq, max_chain_seq, events FROM retention_dropped_chains
	WHERE correlation_id = $1 AND min_chain_seq IS NOT NULL ORDER BY min_chain_seq`

	chainSQL = `SELECT ` + "%s" + ` FROM audit_events
	WHERE correlation_id = $1 AND chain_seq IS NOT NULL ORDER BY chain_seq`
)

// Chain calls fn with each event of correlationID's hash chain, in
// chain_seq order, from one snapshot, one row at a time: memory stays
// constant at any chain length (PostgreSQL finds the chain's rows by the
// correlation_id index and sorts them within work_mem, spilling to
// temporary files beyond; migration 000010). Events stored without a
// chain are not part of it. fn must
// not keep the event past its call. It is bound by ctx alone, not by the
// statement timeout of reads, since a chain may be long and its consumer
// slow: callers bound ctx.
func (r *Reader) Chain(ctx context.Context, correlationID string, fn func(*audit.Event) error) error {
	return r.ReadChain(ctx, correlationID, nil, fn)
}

// ReadChain is Chain that first hands state the chain's ChainState, read
// in the same snapshot as the events, so that the head, the anchor and
// what retention removed agree with them whatever the writers and the
// retention run do meanwhile. state may be nil.
func (r *Reader) ReadChain(ctx context.Context, correlationID string, state func(ChainState) error, fn func(*audit.Event) error) error {
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if state != nil {
				s, err := readChainState(ctx, tx, correlationID)
				if err != nil {
					return err
				}
				if err := state(s); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctx, fmt.Sprintf(chainSQL, selectColumns), correlationID)
			if err != nil {
				return fmt.Errorf("read chain: %w", err)
			}
			return eachEvent(rows, "read chain", fn)
		})
}

func readChainState(ctx context.Context, tx pgx.Tx, correlationID string) (ChainState, error) {
	var s ChainState
	var head integrity.Head
	var cpID *int64
	var cpAt *time.Time
	var cpDoc []byte
	err := tx.QueryRow(ctx, chainStateSQL, correlationID).Scan(&head.Seq, &head.Hash, &cpID, &cpAt, &cpDoc)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return ChainState{}, fmt.Errorf("read chain head: %w", err)
	default:
		s.Head = &head
		if cpID != nil {
			s.Checkpoint = &Checkpoint{ID: *cpID, CreatedAt: cpAt.UTC(), Document: cpDoc}
		}
	}
	rows, err := tx.Query(ctx, droppedSQL, correlationID)
	if err != nil {
		return ChainState{}, fmt.Errorf("read retention records: %w", err)
	}
	if s.Dropped, err = pgx.CollectRows(rows, pgx.RowToStructByPos[integrity.Dropped]); err != nil {
		return ChainState{}, fmt.Errorf("read retention records: %w", err)
	}
	return s, nil
}

// eachEvent scans rows of selectColumns into fn, one at a time.
func eachEvent(rows pgx.Rows, what string, fn func(*audit.Event) error) error {
	defer rows.Close()
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		e := audit.Event(ev)
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Export calls fn with every event matching f (SPEC 9.4), in
// (correlation_id, chain_seq) order (events without a chain last in their
// correlation_id, by time), from one snapshot and one row at a time, so
// memory stays constant at any size and the client's pace sets the read's.
// It is bound by ctx, which the caller gives the export's time limit: the
// statement gets the same deadline, so PostgreSQL stops when the export
// does.
func (r *Reader) Export(ctx context.Context, f Filter, fn func(*audit.Event) error) error {
	if err := f.check(); err != nil {
		return err
	}
	where, args := f.where()
	sql := fmt.Sprintf(`SELECT %s FROM audit_events%s ORDER BY correlation_id, chain_seq, event_timestamp, event_id`, selectColumns, where)
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if deadline, ok := ctx.Deadline(); ok {
				if err := setStatementTimeout(ctx, tx, time.Until(deadline)+time.Second); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctx, sql, args...)
			if err != nil {
				return fmt.Errorf("export events: %w", err)
			}
			return eachEvent(rows, "export events", fn)
		})
}

// ChainIDs calls fn with the correlation_id of every chain the writers
// recorded a head for (pendingOnly: only those that moved since their last
// checkpoint, up to until when it is not zero), in correlation_id order.
func (r *Reader) ChainIDs(ctx context.Context, pendingOnly bool, until time.Time, fn func(string) error) error {
	sql := `SELECT correlation_id FROM chain_heads ORDER BY correlation_id`
	var args []any
	if pendingOnly {
		sql = `SELECT correlation_id FROM chain_heads WHERE checkpoint_id IS NULL AND ($1::timestamptz IS NULL OR pending_since <= $1)
		ORDER BY correlation_id`
		var bound *time.Time
		if !until.IsZero() {
			bound = &until
		}
		args = append(args, bound)
	}
	rows, err := r.pool.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("chain ids: %w", err)
	}
	var id string
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error { return fn(id) })
	if err != nil {
		return fmt.Errorf("chain ids: %w", err)
	}
	return nil
}

// Checkpoints calls fn with every recorded checkpoint, in id order.
func (r *Reader) Checkpoints(ctx context.Context, fn func(*Checkpoint) error) error {
	rows, err := r.pool.Query(ctx, `SELECT id, created_at, document, published_at FROM integrity_checkpoints ORDER BY id`)
	if err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	var c Checkpoint
	_, err = pgx.ForEachRow(rows, []any{&c.ID, &c.CreatedAt, &c.Document, &c.PublishedAt}, func() error {
		c.CreatedAt = c.CreatedAt.UTC()
		return fn(&c)
	})
	if err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	return nil
}
