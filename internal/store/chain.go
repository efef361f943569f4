package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/integrity"
)

const (
	// Missing heads are inserted first, as placeholders the batch then
	// moves, so that a new chain has a row to lock: a second writer's
	// INSERT of the same correlation_id waits for the first one's commit
	// and then finds the row. The ids are sorted, so two writers lock in
	// the same order.
	insertChainHeads = `INSERT INTO chain_heads (correlation_id, chain_seq, event_hash)
	SELECT id, 0, ''::bytea FROM unnest($1::text[]) AS id
	ON CONFLICT (correlation_id) DO NOTHING`

	// Then every head of the batch is locked in one statement, in
	// correlation_id order (the column's "C" collation, Go's sort order):
	// writers queue on a head for the whole transaction and never
	// deadlock on each other. Read committed gives each statement a new
	// snapshot, so a head another writer moved and committed while this
	// one waited is read as it now is.
	lockChainHeads = `SELECT correlation_id, chain_seq, event_hash FROM chain_heads
	WHERE correlation_id = ANY($1::text[])
	ORDER BY correlation_id FOR UPDATE`

	// After the COPY, all heads move in one statement, pending the next
	// checkpoint.
	moveChainHeads = `UPDATE chain_heads AS h
	SET chain_seq = u.seq, event_hash = u.hash, checkpoint_id = NULL, pending_since = COALESCE(h.pending_since, now())
	FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS u(id, seq, hash)
	WHERE h.correlation_id = u.id`
)

// chainLinks is a batch's events linked to their chains: the new heads to
// write once the rows are in.
type chainLinks struct {
	ids    []string
	seqs   []int64
	hashes [][]byte
}

// linkChains locks the chain heads of events' correlation ids and links
// each event, in the order given (storage order), to its chain: set
// chain_seq, previous_event_hash, hash_key_id, hash_version and
// event_hash on it. An event whose event_data cannot be canonicalised
// (which jsonb would refuse as well) is poison.
func linkChains(ctx context.Context, tx pgx.Tx, keys *integrity.Keys, events []*audit.Event) (*chainLinks, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.CorrelationID
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	b := &pgx.Batch{}
	b.Queue(insertChainHeads, ids)
	b.Queue(lockChainHeads, ids)
	br := tx.SendBatch(ctx, b)
	heads, err := readChainHeads(br, len(ids))
	if closeErr := br.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("lock chain heads: %w", closeErr)
	}
	if err != nil {
		return nil, err
	}

	linker := keys.Linker()
	for _, e := range events {
		head, err := linker.Link(e, heads[e.CorrelationID])
		if err != nil {
			return nil, &errclass.Error{Class: errclass.Poison, Err: fmt.Errorf("event %s: %w", e.EventID, err)}
		}
		heads[e.CorrelationID] = head
	}
	links := &chainLinks{ids: ids, seqs: make([]int64, len(ids)), hashes: make([][]byte, len(ids))}
	for i, id := range ids {
		links.seqs[i], links.hashes[i] = heads[id].Seq, heads[id].Hash
	}
	return links, nil
}

func readChainHeads(br pgx.BatchResults, n int) (map[string]integrity.Head, error) {
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("insert chain heads: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("lock chain heads: %w", err)
	}
	heads := make(map[string]integrity.Head, n)
	var id string
	var head integrity.Head
	_, err = pgx.ForEachRow(rows, []any{&id, &head.Seq, &head.Hash}, func() error {
		heads[id] = integrity.Head{Seq: head.Seq, Hash: head.Hash}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lock chain heads: %w", err)
	}
	if len(heads) != n {
		return nil, fmt.Errorf("lock chain heads: %d of %d found", len(heads), n)
	}
	return heads, nil
}

// move writes the batch's new heads.
func (l *chainLinks) move(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, moveChainHeads, l.ids, l.seqs, l.hashes); err != nil {
		return fmt.Errorf("move chain heads: %w", err)
	}
	return nil
}
