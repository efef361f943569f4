package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/audit"
)

// Conflict is an event that reuses an event_id stored, or held by an
// earlier record of the same Write, with other content: it is not stored
// (the stored row is never replaced), and Write reports it instead of
// counting it as a duplicate.
type Conflict struct {
	// Index is the event's position in the events passed to Write.
	Index   int
	EventID uuid.UUID
	// Stored is the digest (audit.Event.ContentDigest) kept under the id,
	// Got the event's.
	Stored, Got [sha256.Size]byte
	// InBatch is set when Stored is that of an earlier record of the same
	// Write, stored by it.
	InBatch bool
}

const (
	// The id goes into the register with the digest of its content; only
	// ids that were new come back.
	insertEventIDs = `INSERT INTO audit_event_ids (event_id, event_timestamp, content_sha256)
	SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bytea[])
	ON CONFLICT (event_id) DO NOTHING
	RETURNING event_id`

	// The stored digests of the ids that did not come back: one lookup
	// by primary key for the whole batch, only when a batch repeats
	// stored ids (NULL for rows stored before migration 000003).
	selectEventDigests = `SELECT event_id, content_sha256 FROM audit_event_ids WHERE event_id = ANY($1::uuid[])`
)

// eventBatch is the events of one Write as the register sees them: the
// first record of each event_id is offered to the register; a later one
// with the same content is a duplicate at once, one with other content
// waits to be judged against what the id ends up holding.
type eventBatch struct {
	events  []audit.Event
	digests [][sha256.Size]byte
	// first lists the index of the first record of each event_id.
	first []int
	// repeats pairs a later record of an id, with other content than its
	// first, with the index of that first.
	repeats [][2]int
	// duplicates counts the later records with their first's content.
	duplicates int
}

func newEventBatch(events []audit.Event) *eventBatch {
	b := &eventBatch{events: events, digests: make([][sha256.Size]byte, len(events)), first: make([]int, 0, len(events))}
	firstOf := make(map[uuid.UUID]int, len(events))
	for i := range events {
		b.digests[i] = events[i].ContentDigest()
		f, seen := firstOf[events[i].EventID]
		switch {
		case !seen:
			firstOf[events[i].EventID] = i
			b.first = append(b.first, i)
		case b.digests[f] == b.digests[i]:
			b.duplicates++
		default:
			b.repeats = append(b.repeats, [2]int{i, f})
		}
	}
	return b
}

// registered is what register found.
type registered struct {
	// fresh holds the indexes (into events) of the records to copy.
	fresh      []int
	duplicates int
	// unverified counts the duplicates of rows stored without a digest.
	unverified int
	conflicts  []Conflict
}

// register inserts the batch's ids with their digests and judges every
// record whose id was there already, or repeats in the batch.
func (b *eventBatch) register(ctx context.Context, tx pgx.Tx) (registered, error) {
	ids := make([][16]byte, len(b.first))
	times := make([]time.Time, len(b.first))
	digests := make([][]byte, len(b.first))
	for j, i := range b.first {
		ids[j], times[j], digests[j] = b.events[i].EventID, b.events[i].EventTimestamp, b.digests[i][:]
	}
	rows, err := tx.Query(ctx, insertEventIDs, ids, times, digests)
	if err != nil {
		return registered{}, fmt.Errorf("insert event ids: %w", err)
	}
	fresh, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return registered{}, fmt.Errorf("insert event ids: %w", err)
	}
	isNew := make(map[[16]byte]struct{}, len(fresh))
	for _, id := range fresh {
		isNew[id] = struct{}{}
	}
	r := registered{duplicates: b.duplicates}
	if len(fresh) == len(b.first) {
		// The common case: every id was new, nothing to look up.
		r.fresh = b.first
	} else {
		r.fresh = make([]int, 0, len(fresh))
	}
	var known [][16]byte
	for _, i := range b.first {
		if _, ok := isNew[b.events[i].EventID]; !ok {
			known = append(known, b.events[i].EventID)
		} else if len(fresh) != len(b.first) {
			r.fresh = append(r.fresh, i)
		}
	}
	stored, err := lookupDigests(ctx, tx, known)
	if err != nil {
		return registered{}, err
	}
	judge := func(i int, held []byte, inBatch bool) {
		switch {
		case held == nil:
			r.duplicates++
			r.unverified++
		case string(held) == string(b.digests[i][:]):
			r.duplicates++
		default:
			c := Conflict{Index: i, EventID: b.events[i].EventID, Got: b.digests[i], InBatch: inBatch}
			copy(c.Stored[:], held)
			r.conflicts = append(r.conflicts, c)
		}
	}
	for _, i := range b.first {
		if _, ok := isNew[b.events[i].EventID]; !ok {
			judge(i, stored[b.events[i].EventID], false)
		}
	}
	for _, rep := range b.repeats {
		i, f := rep[0], rep[1]
		if _, ok := isNew[b.events[f].EventID]; ok {
			judge(i, b.digests[f][:], true)
		} else {
			judge(i, stored[b.events[i].EventID], false)
		}
	}
	return r, nil
}

// lookupDigests returns the stored digest of each of ids (nil for a row
// stored without one).
func lookupDigests(ctx context.Context, tx pgx.Tx, ids [][16]byte) (map[[16]byte][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, selectEventDigests, ids)
	if err != nil {
		return nil, fmt.Errorf("look up stored digests: %w", err)
	}
	out := make(map[[16]byte][]byte, len(ids))
	var id [16]byte
	var digest []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &digest}, func() error {
		out[id] = digest
		digest = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up stored digests: %w", err)
	}
	return out, nil
}
