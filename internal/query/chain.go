package query

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/audit"
)

// Chain calls fn with each event of correlationID's hash chain, in
// chain_seq order, from one snapshot, one row at a time: memory stays
// constant at any chain length (the index audit_events_chain_idx serves
// the order). Events stored without a chain are not part of it. fn must
// not keep the event past its call. It is bound by ctx alone, not by the
// statement timeout of reads, since a chain may be long and its consumer
// slow: callers bound ctx.
func (r *Reader) Chain(ctx context.Context, correlationID string, fn func(*audit.Event) error) error {
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT `+selectColumns+` FROM audit_events
				WHERE correlation_id = $1 AND chain_seq IS NOT NULL ORDER BY chain_seq`, correlationID)
			if err != nil {
				return fmt.Errorf("read chain: %w", err)
			}
			defer rows.Close()
			for rows.Next() {
				ev, err := scanEvent(rows)
				if err != nil {
					return fmt.Errorf("read chain: %w", err)
				}
				e := audit.Event(ev)
				if err := fn(&e); err != nil {
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read chain: %w", err)
			}
			return nil
		})
}
