package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/testenv"
)

func newChainKeys(t *testing.T, ids ...string) *integrity.Keys {
	t.Helper()
	var keys []keyring.Key
	for _, id := range ids {
		k, err := keyring.NewKey(id)
		require.NoError(t, err)
		keys = append(keys, k)
	}
	ring, err := keyring.Parse(keyring.Marshal(keys...), "")
	require.NoError(t, err)
	return integrity.NewKeys(ring)
}

// openChainStore opens a Store that links events with keys.
func openChainStore(t *testing.T, url string, keys *integrity.Keys) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{URL: url, ConnectTimeout: 2 * time.Second, Log: zap.NewNop(), Chain: keys})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// readChain returns the stored chain of corr in chain_seq order.
func readChain(t *testing.T, pool *pgxpool.Pool, corr string) []audit.Event {
	t.Helper()
	r, err := query.NewReader(pool, query.Config{StatementTimeout: 10 * time.Second, CountCap: 10})
	require.NoError(t, err)
	var out []audit.Event
	require.NoError(t, r.Chain(t.Context(), corr, func(e *audit.Event) error {
		out = append(out, *e)
		return nil
	}))
	return out
}

// requireChain checks that corr's stored chain has n events, chain_seq 1
// to n, and verifies with keys.
func requireChain(t *testing.T, pool *pgxpool.Pool, keys *integrity.Keys, corr string, n int) []audit.Event {
	t.Helper()
	events := readChain(t, pool, corr)
	require.Len(t, events, n)
	v := keys.NewChainVerifier(corr, nil)
	for i := range events {
		require.Equal(t, int64(i+1), *events[i].ChainSeq)
		require.Nil(t, v.Check(&events[i]), "chain_seq %d", i+1)
	}
	summary, breaks := v.Finish()
	require.Empty(t, breaks)
	require.Equal(t, int64(n), summary.Verified)
	return events
}

func TestWriteLinksChains(t *testing.T) {
	keys := newChainKeys(t, "k1")
	s := openChainStore(t, pg.URL(), keys)
	ctx := t.Context()
	a, b := "chain-a-"+uuid.NewString(), "chain-b-"+uuid.NewString()
	now := time.Now()

	// Storage order, not time order: the second event of a is an hour
	// older than the first.
	a1, b1, a2 := testEvent(a, now), testEvent(b, now), testEvent(a, now.Add(-time.Hour))
	a2.SubmittedBy, a2.EventData = nil, json.RawMessage(`{"z": 1.0, "a": [1E+2, "\u00e9"], "z": 2}`)
	res, err := s.Write(ctx, []audit.Event{a1, b1, a1, a2}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 3, EventDuplicates: 1, ChainHeads: 2}, res)

	// A redelivered event is skipped before it gets a chain_seq; a
	// backfilled one years old extends the chain.
	old := testEvent(a, time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC))
	res, err = s.Write(ctx, []audit.Event{a2, old, b1}, nil)
	require.NoError(t, err)
	require.Equal(t, WriteResult{Events: 1, EventDuplicates: 2, ChainHeads: 1}, res)

	chainA := requireChain(t, s.Pool(), keys, a, 3)
	require.Equal(t, []uuid.UUID{a1.EventID, a2.EventID, old.EventID}, []uuid.UUID{chainA[0].EventID, chainA[1].EventID, chainA[2].EventID})
	require.Empty(t, chainA[0].PreviousEventHash)
	require.NotNil(t, chainA[0].PreviousEventHash, "empty, not null")
	require.Equal(t, chainA[0].EventHash, chainA[1].PreviousEventHash)
	require.Equal(t, "k1", *chainA[2].HashKeyID)
	requireChain(t, s.Pool(), keys, b, 1)

	var seq int64
	var hash []byte
	var pending bool
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT chain_seq, event_hash, checkpoint_id IS NULL AND pending_since IS NOT NULL
		FROM chain_heads WHERE correlation_id = $1`, a).Scan(&seq, &hash, &pending))
	require.Equal(t, int64(3), seq)
	require.Equal(t, chainA[2].EventHash, hash)
	require.True(t, pending, "moved since the last checkpoint")

	// A store without keys (INTEGRITY_DISABLED) stores no chain fields.
	plain := openStore(t, pg.URL())
	c := testEvent(a, now)
	_, err = plain.Write(ctx, []audit.Event{c}, nil)
	require.NoError(t, err)
	got := loadEvent(t, plain.Pool(), c.EventID)
	var chainSeq *int64
	require.NoError(t, plain.Pool().QueryRow(ctx, `SELECT chain_seq FROM audit_events WHERE event_id = $1`, c.EventID).Scan(&chainSeq))
	require.Nil(t, chainSeq)
	require.Equal(t, c.EventID, got.EventID)
	requireChain(t, s.Pool(), keys, a, 3)
}

// TestChainRollsBackWithItsBatch: a batch the database refuses leaves the
// heads as they were, so the batch's halves (the writer's isolation of the
// culprit) and later batches continue the chain without a gap.
func TestChainRollsBackWithItsBatch(t *testing.T) {
	keys := newChainKeys(t, "k1")
	s := openChainStore(t, pg.URL(), keys)
	ctx := t.Context()
	corr := "chain-rollback-" + uuid.NewString()
	_, err := s.Write(ctx, []audit.Event{testEvent(corr, time.Now())}, nil)
	require.NoError(t, err)

	good1, poison, good2 := testEvent(corr, time.Now()), testEvent(corr, time.Now()), testEvent(corr, time.Now())
	poison.EventData = json.RawMessage(`{"n":1e200000}`) // numeric overflow in jsonb: 22003
	_, err = s.Write(ctx, []audit.Event{good1, poison, good2}, nil)
	require.Equal(t, errclass.Poison, errclass.Of(err), "%v", err)
	requireChain(t, s.Pool(), keys, corr, 1)

	for _, half := range [][]audit.Event{{good1}, {poison}, {good2}} {
		_, err := s.Write(ctx, half, nil)
		if half[0].EventID == poison.EventID {
			require.Equal(t, errclass.Poison, errclass.Of(err))
			continue
		}
		require.NoError(t, err)
	}
	chain := requireChain(t, s.Pool(), keys, corr, 3)
	require.Equal(t, good2.EventID, chain[2].EventID)

	// event_data the chain cannot encode (jsonb could not either) is
	// poison too, decided before the database sees it.
	bad := testEvent(corr, time.Now())
	bad.EventData = json.RawMessage(`{"s":"\ud800"}`)
	_, err = s.Write(ctx, []audit.Event{bad}, nil)
	require.Equal(t, errclass.Poison, errclass.Of(err), "%v", err)
	require.ErrorIs(t, err, integrity.ErrJSON)
	requireChain(t, s.Pool(), keys, corr, 3)
}

// TestChainWritersRace: writers that both hold the same partitions for a
// while (a rebalance overlap) write the same and different records of one
// correlation_id at once: one unbroken chain, every event once, no
// chain_seq twice.
func TestChainWritersRace(t *testing.T) {
	keys := newChainKeys(t, "k1")
	stores := []*Store{openChainStore(t, pg.URL(), keys), openChainStore(t, pg.URL(), keys)}
	corr := "chain-race-" + uuid.NewString()
	other := "chain-race-other-" + uuid.NewString()
	const batches, size = 20, 25
	// Both writers get every record (the overlap), in batches.
	records := make([][]audit.Event, batches)
	for i := range records {
		for j := range size {
			c := corr
			if j%5 == 0 {
				c = other
			}
			records[i] = append(records[i], testEvent(c, time.Now()))
		}
	}
	var g errgroup.Group
	var mu sync.Mutex
	stored := 0
	for w, s := range stores {
		g.Go(func() error {
			for i := range records {
				// Each writer its own copy: linking sets fields on it.
				batch := append([]audit.Event(nil), records[(i+w*7)%batches]...)
				res, err := s.Write(t.Context(), batch, nil)
				if err != nil {
					return fmt.Errorf("writer %d: %w", w, err)
				}
				mu.Lock()
				stored += res.Events
				mu.Unlock()
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	require.Equal(t, batches*size, stored, "every record stored once")
	requireChain(t, stores[0].Pool(), keys, corr, batches*size*4/5)
	requireChain(t, stores[0].Pool(), keys, other, batches*size/5)
	var repeated int
	require.NoError(t, stores[0].Pool().QueryRow(t.Context(), `SELECT count(*) FROM (SELECT chain_seq FROM audit_events
		WHERE correlation_id = $1 GROUP BY chain_seq HAVING count(*) > 1) d`, corr).Scan(&repeated))
	require.Zero(t, repeated)
}

// TestChainStaleHead: a writer remembers the head it committed; when
// another writer has moved the chain since (it held the partition for a
// while), the first one's next batch loses the race, is written again
// with the heads locked and links to the head the other one left.
func TestChainStaleHead(t *testing.T) {
	keys := newChainKeys(t, "k1")
	a, b := openChainStore(t, pg.URL(), keys), openChainStore(t, pg.URL(), keys)
	corr := "chain-stale-" + uuid.NewString()
	write := func(s *Store, n int) WriteResult {
		t.Helper()
		var batch []audit.Event
		for range n {
			batch = append(batch, testEvent(corr, time.Now()))
		}
		res, err := s.Write(t.Context(), batch, nil)
		require.NoError(t, err)
		return res
	}
	require.Zero(t, write(a, 1).ChainRaces, "a new chain")
	require.Zero(t, write(b, 2).ChainRaces, "b reads the head a stored")
	res := write(a, 1)
	require.Equal(t, 1, res.ChainRaces, "a remembered chain_seq 1, b had moved it to 3")
	require.Equal(t, 1, res.Events)
	chain := requireChain(t, a.Pool(), keys, corr, 4)
	require.Equal(t, int64(4), *chain[3].ChainSeq)
	require.Zero(t, write(a, 1).ChainRaces, "a remembers the head it committed after the race")
	requireChain(t, a.Pool(), keys, corr, 5)
}

// TestChainKeyRotation: after a key is added, new events are linked with
// it, and the whole chain verifies with the new file.
func TestChainKeyRotation(t *testing.T) {
	old, err := keyring.NewKey("2025-01")
	require.NoError(t, err)
	added, err := keyring.NewKey("2025-06")
	require.NoError(t, err)
	ring := func(keys ...keyring.Key) *integrity.Keys {
		r, err := keyring.Parse(keyring.Marshal(keys...), "")
		require.NoError(t, err)
		return integrity.NewKeys(r)
	}
	corr := "chain-rotation-" + uuid.NewString()
	_, err = openChainStore(t, pg.URL(), ring(old)).Write(t.Context(), []audit.Event{testEvent(corr, time.Now())}, nil)
	require.NoError(t, err)
	rotated := openChainStore(t, pg.URL(), ring(old, added))
	_, err = rotated.Write(t.Context(), []audit.Event{testEvent(corr, time.Now())}, nil)
	require.NoError(t, err)
	chain := requireChain(t, rotated.Pool(), rotated.chain, corr, 2)
	require.Equal(t, "2025-01", *chain[0].HashKeyID)
	require.Equal(t, "2025-06", *chain[1].HashKeyID)
}

// TestRecordCheckpoints: a checkpoint covers exactly the heads that moved
// since the previous one, as they were; concurrent checkpointers (one per
// writer) make one sequence of ids, each naming the previous hash.
func TestRecordCheckpoints(t *testing.T) {
	db := testenv.NewPostgres(t)
	_, err := Migrate(t.Context(), db.URL(), zap.NewNop())
	require.NoError(t, err)
	keys := newChainKeys(t, "k1")
	s := openChainStore(t, db.URL(), keys)
	ctx := t.Context()
	priv, _ := integrity.GenerateSigningKey()
	signer, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	sign := func(prev PreviousCheckpoint, heads []integrity.CheckpointHead) ([]*integrity.SignedCheckpoint, error) {
		return integrity.SignCheckpoints(signer, "test", time.Now(), prev.ID, prev.Hash, heads)
	}

	none, err := s.RecordCheckpoints(ctx, 100, sign)
	require.NoError(t, err)
	require.Empty(t, none, "nothing moved, no checkpoint")
	lag, err := s.CheckpointLag(ctx)
	require.NoError(t, err)
	require.Zero(t, lag)

	a, b := testEvent("cp-a", time.Now()), testEvent("cp-b", time.Now())
	_, err = s.Write(ctx, []audit.Event{a, b, testEvent("cp-a", time.Now())}, nil)
	require.NoError(t, err)
	lag, err = s.CheckpointLag(ctx)
	require.NoError(t, err)
	require.Positive(t, lag, "moved heads wait for a checkpoint")

	first, err := s.RecordCheckpoints(ctx, 100, sign)
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.Equal(t, int64(1), first[0].ID)
	require.Nil(t, first[0].PreviousHash)
	heads := first[0].Heads
	require.Len(t, heads, 2)
	require.Equal(t, "cp-a", heads[0].CorrelationID)
	require.Equal(t, int64(2), heads[0].Seq)
	require.Equal(t, "cp-b", heads[1].CorrelationID)
	require.Equal(t, int64(1), heads[1].Seq)
	chainA := readChain(t, s.Pool(), "cp-a")
	require.Equal(t, chainA[1].EventHash, heads[0].Hash)

	// Recorded, not yet published: still lagging until Kafka has it.
	unpublished, err := s.UnpublishedCheckpoints(ctx)
	require.NoError(t, err)
	require.Len(t, unpublished, 1)
	require.Equal(t, first[0].Document, unpublished[0].Document)
	lag, err = s.CheckpointLag(ctx)
	require.NoError(t, err)
	require.Positive(t, lag)
	require.NoError(t, s.MarkCheckpointsPublished(ctx, []int64{1}))
	lag, err = s.CheckpointLag(ctx)
	require.NoError(t, err)
	require.Zero(t, lag)

	// Only b moves: the next checkpoint covers b alone. Several
	// checkpointers at once take consecutive ids; the first of them that
	// finds b covers it, the others find nothing.
	_, err = s.Write(ctx, []audit.Event{testEvent("cp-b", time.Now())}, nil)
	require.NoError(t, err)
	var g errgroup.Group
	results := make([][]*integrity.SignedCheckpoint, 4)
	for i := range results {
		g.Go(func() error {
			var err error
			results[i], err = openChainStore(t, db.URL(), keys).RecordCheckpoints(ctx, 100, sign)
			return err
		})
	}
	require.NoError(t, g.Wait())
	var second []*integrity.SignedCheckpoint
	for _, r := range results {
		second = append(second, r...)
	}
	require.Len(t, second, 1)
	require.Equal(t, int64(2), second[0].ID)
	require.Equal(t, first[0].Hash, second[0].PreviousHash)
	require.Len(t, second[0].Heads, 1)
	require.Equal(t, integrity.Head{Seq: 2, Hash: readChain(t, s.Pool(), "cp-b")[1].EventHash}, second[0].Heads[0].Head)

	// Many heads: several checkpoints in one go, at most maxHeads heads
	// per transaction.
	var many []audit.Event
	for i := range 30 {
		many = append(many, testEvent(fmt.Sprintf("cp-many-%02d", i), time.Now()))
	}
	_, err = s.Write(ctx, many, nil)
	require.NoError(t, err)
	third, err := s.RecordCheckpoints(ctx, 20, sign)
	require.NoError(t, err)
	require.Len(t, third, 1)
	require.Len(t, third[0].Heads, 20)
	fourth, err := s.RecordCheckpoints(ctx, 20, sign)
	require.NoError(t, err)
	require.Len(t, fourth[0].Heads, 10)
	require.NoError(t, fourth[0].VerifyNext(third[0]))
}
