package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/integrity"
)

// A batch links its events to the chain heads as it reads them, without
// locking them, and moves the heads after the COPY only if they are still
// as read: optimistic, because two writers move one chain at the same time
// only while a rebalance overlaps them. Locking every head up front (the
// first design) wrote each head row twice more per batch (the lock, and a
// placeholder row for a new chain) and cost PostgreSQL more CPU than the
// chain's columns and index together (bench/README.md).
const (
	readChainHeads = `SELECT correlation_id, chain_seq, event_hash FROM chain_heads
	WHERE correlation_id = ANY($1::text[])`

	// A batch that lost a race is linked again with its heads locked
	// first, in correlation_id order (the column's "C" collation, Go's
	// sort order), so that it cannot lose again to a chain that exists:
	// the other writer's transaction waits, or this one waits for it and
	// then reads the head it left.
	lockChainHeads = readChainHeads + ` ORDER BY correlation_id FOR UPDATE`

	// The heads read at chain_seq prev move, and the chains that had none
	// start, in two statements sent together; either falls short of its
	// count when another writer moved or started one of them first. An
	// UPDATE that finds a head locked waits for that transaction and then
	// checks chain_seq against the row as committed, so a head never moves
	// from a state it was not read in; an INSERT waits the same way on a
	// new id. A moved head is pending the next checkpoint, under its row
	// lock like the checkpointer's covering (000006_hash_chain).
	moveChainHeads = `UPDATE chain_heads AS h
	SET chain_seq = u.seq, event_hash = u.hash, checkpoint_id = NULL, pending_since = COALESCE(h.pending_since, now())
	FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bigint[]) AS u(id, seq, hash, prev)
	WHERE h.correlation_id = u.id AND h.chain_seq = u.prev`
	startChainHeads = `INSERT INTO chain_heads (correlation_id, chain_seq, event_hash, pending_since)
	SELECT id, seq, hash, now() FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS u(id, seq, hash)
	ON CONFLICT (correlation_id) DO NOTHING`
)

// errChainRace means another writer moved one of a batch's chain heads
// between reading and moving it: the transaction is rolled back and the
// batch written again (Write), its heads locked first.
var errChainRace = errors.New("a chain head moved while the batch was linked to it")

// chainLinks is a batch's events linked to their chains: the heads to
// move from the chain_seq they were read at, and the chains to start.
type chainLinks struct {
	ids            []string
	moved, started heads
}

// heads are new chain heads, and for moved ones the chain_seq each was
// read at.
type heads struct {
	ids    []string
	seqs   []int64
	hashes [][]byte
	prevs  []int64
}

func (h *heads) add(id string, head integrity.Head, prev int64) {
	h.ids, h.seqs, h.hashes = append(h.ids, id), append(h.seqs, head.Seq), append(h.hashes, head.Hash)
	if prev > 0 {
		h.prevs = append(h.prevs, prev)
	}
}

// linkChains reads the chain heads of events' correlation ids (those cache
// does not remember, or with lock all of them, locked) and links
// each event, in the order given (storage order), to its chain: set
// chain_seq, previous_event_hash, hash_key_id, hash_version and
// event_hash on it. An event whose event_data cannot be canonicalised
// (which jsonb would refuse as well) is poison.
func linkChains(ctx context.Context, tx pgx.Tx, keys *integrity.Keys, cache *headCache, lock bool, events []*audit.Event) (*chainLinks, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.CorrelationID
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	read := make(map[string]integrity.Head, len(ids))
	query, missing := lockChainHeads, ids
	if !lock {
		query, missing = readChainHeads, cache.lookup(ids, read)
	}
	if len(missing) > 0 {
		if err := readHeads(ctx, tx, query, missing, read); err != nil {
			return nil, err
		}
	}

	linked := make(map[string]integrity.Head, len(ids))
	linker := keys.Linker()
	for _, e := range events {
		prev, ok := linked[e.CorrelationID]
		if !ok {
			prev = read[e.CorrelationID]
		}
		next, err := linker.Link(e, prev)
		if err != nil {
			return nil, &errclass.Error{Class: errclass.Poison, Err: fmt.Errorf("event %s: %w", e.EventID, err)}
		}
		linked[e.CorrelationID] = next
	}
	links := &chainLinks{ids: ids}
	for _, id := range ids {
		if prev, ok := read[id]; ok {
			links.moved.add(id, linked[id], prev.Seq)
		} else {
			links.started.add(id, linked[id], 0)
		}
	}
	return links, nil
}

// readHeads reads the stored heads of ids with query (readChainHeads or
// lockChainHeads) into heads; a chain without events has none.
func readHeads(ctx context.Context, tx pgx.Tx, query string, ids []string, heads map[string]integrity.Head) error {
	rows, err := tx.Query(ctx, query, ids)
	if err != nil {
		return fmt.Errorf("read chain heads: %w", err)
	}
	var id string
	var head integrity.Head
	_, err = pgx.ForEachRow(rows, []any{&id, &head.Seq, &head.Hash}, func() error {
		heads[id] = integrity.Head{Seq: head.Seq, Hash: head.Hash}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read chain heads: %w", err)
	}
	return nil
}

// heads counts the chains the batch moved or started.
func (l *chainLinks) heads() int { return len(l.moved.ids) + len(l.started.ids) }

// move writes the batch's new heads, or fails with errChainRace.
func (l *chainLinks) move(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	if len(l.moved.ids) > 0 {
		b.Queue(moveChainHeads, l.moved.ids, l.moved.seqs, l.moved.hashes, l.moved.prevs)
	}
	if len(l.started.ids) > 0 {
		b.Queue(startChainHeads, l.started.ids, l.started.seqs, l.started.hashes)
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for _, h := range []heads{l.moved, l.started} {
		if len(h.ids) == 0 {
			continue
		}
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("move chain heads: %w", err)
		}
		if n := tag.RowsAffected(); n != int64(len(h.ids)) {
			return fmt.Errorf("move chain heads: %d of %d as read: %w", n, len(h.ids), errChainRace)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("move chain heads: %w", err)
	}
	return nil
}
