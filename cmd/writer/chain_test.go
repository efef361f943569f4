package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// requireChains verifies the hash chain of each of the first n
// correlation ids of the pipeline with the integrity package's verifier,
// over the rows read back: every chain starts at chain_seq 1 and has no
// break, and together the chains hold every stored event of the test.
func requireChains(t *testing.T, p pipeline, keys *integrity.Keys, n int) {
	t.Helper()
	r, err := query.NewReader(shared.db, query.Config{StatementTimeout: 10 * time.Second, CountCap: 10})
	require.NoError(t, err)
	var verified int64
	for i := range n {
		corr := correlationOf(p.tag, i)
		v := keys.NewChainVerifier(corr, nil)
		require.NoError(t, r.Chain(t.Context(), corr, func(e *audit.Event) error {
			if b := v.Check(e); b != nil {
				return fmt.Errorf("chain %s breaks at chain_seq %d (%s): %s", corr, b.ChainSeq, b.Kind, b.Message)
			}
			return nil
		}))
		summary, breaks := v.Finish()
		require.Empty(t, breaks, corr)
		require.False(t, summary.Truncated, "%s starts at chain_seq 1", corr)
		verified += summary.Verified
	}
	require.Equal(t, int64(storedCount(t, p)), verified, "every stored event is in a verified chain")
	t.Logf("%d chains verified, %d events", n, verified)
}

// loadKeys loads a key file of the test's.
func loadKeys(t *testing.T, path string) *integrity.Keys {
	t.Helper()
	keys, err := integrity.LoadKeys(path)
	require.NoError(t, err)
	return keys
}

// chainRecord is a valid event of the test tagged tag in chain corr, with
// the given event time and action, and a client event_id.
func chainRecord(tag, corr string, ts time.Time, action string) *kgo.Record {
	value := fmt.Sprintf(`{"version":"1.0","event_type":%q,"event_timestamp":%q,"event_category":"gateway",`+
		`"event_action":%q,"event_outcome":"success","correlation_id":%q,"event_data":{"n":1.50},"event_id":%q}`,
		tag, ts.UTC().Format(time.RFC3339Nano), action, corr, uuid.NewString())
	return &kgo.Record{Key: []byte(corr), Value: []byte(value),
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}}
}

// produce publishes records to p's events topic and waits for the acks.
func produce(t *testing.T, p pipeline, records ...*kgo.Record) {
	t.Helper()
	for _, r := range records {
		r.Topic = p.events
	}
	require.NoError(t, shared.kcl.ProduceSync(t.Context(), records...).FirstErr())
}

// readChainOf returns the stored chain of corr, in chain_seq order.
func readChainOf(t *testing.T, pool *pgxpool.Pool, corr string) []audit.Event {
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

// verifyChain checks corr's stored chain with keys and anchors and returns
// its events.
func verifyChain(t *testing.T, pool *pgxpool.Pool, keys *integrity.Keys, corr string, anchors []integrity.Head) []audit.Event {
	t.Helper()
	events := readChainOf(t, pool, corr)
	v := keys.NewChainVerifier(corr, anchors)
	for i := range events {
		b := v.Check(&events[i])
		require.Nil(t, b, "chain %s", corr)
	}
	summary, breaks := v.Finish()
	require.Empty(t, breaks, "chain %s", corr)
	require.Equal(t, int64(len(events)), summary.Verified)
	require.False(t, summary.Truncated)
	return events
}

// TestChainThroughReplayBackfillAndKeyRotation: an event the database
// refused goes to the DLQ, events keep coming, a backfilled event years
// old is stored, the writer restarts with a key added, and the dead letter
// is replayed (by the real dlq-replayer) once the refusal is lifted: the
// chain holds them all in the order they were stored, never by time, and
// verifies with the rotated key file.
func TestChainThroughReplayBackfillAndKeyRotation(t *testing.T) {
	ctx := t.Context()
	p := newPipeline(t)
	corr := p.tag + "-chain"
	dir := t.TempDir()
	first := filepath.Join(dir, "first.yaml")
	require.NoError(t, keyring.Generate(first, "2025-01"))
	w := startWriter(t, p, "chain-1", "INTEGRITY_KEYS_FILE="+first)
	w.awaitReady(30 * time.Second) // the schema is in place
	// Until it is lifted, the database refuses the second event (failed).
	suffix := p.tag[len(p.tag)-8:]
	refused := "refused-" + suffix
	constraint := pgx.Identifier{"chain_test_" + suffix}.Sanitize()
	_, err := shared.db.Exec(ctx, `ALTER TABLE audit_events ADD CONSTRAINT `+constraint+` CHECK (event_action <> '`+refused+`')`)
	require.NoError(t, err)
	dropConstraint := func() {
		_, err := shared.db.Exec(context.Background(), `ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS `+constraint)
		require.NoError(t, err)
	}
	t.Cleanup(dropConstraint)

	now := time.Now()
	// Years old, but within the default RETENTION_DAYS (seven years): an
	// older one is dropped with its partition by the writer's first
	// maintenance run, as retention says (internal/lifecycle).
	backfill := time.Date(now.Year()-3, 3, 1, 12, 0, 0, 0, time.UTC)
	produce(t, p, chainRecord(p.tag, corr, now, "first"))
	produce(t, p, chainRecord(p.tag, corr, now.Add(-2*time.Hour), refused))
	produce(t, p, chainRecord(p.tag, corr, now, "third"), chainRecord(p.tag, corr, backfill, "backfilled"))
	testenv.Await(t, catchUpTimeout, "three stored, one dead-lettered", func() (bool, string) {
		n, dead := storedCount(t, p), dlqCount(t, p)
		return n == 3 && dead == 1, fmt.Sprintf("%d stored, %d dead letters", n, dead)
	})
	w.signal(syscall.SIGTERM)
	require.Zero(t, w.WaitExit(t, gracePeriod), "exit status after SIGTERM")

	// Rotation: a key is added at the end of the file; it links from now on.
	ring, err := keyring.Load(first)
	require.NoError(t, err)
	oldSecret, _ := ring.Secret("2025-01")
	added, err := keyring.NewKey("2025-06")
	require.NoError(t, err)
	rotated := filepath.Join(dir, "rotated.yaml")
	require.NoError(t, os.WriteFile(rotated, keyring.Marshal(keyring.Key{ID: "2025-01", Secret: oldSecret}, added), 0o600))
	w = startWriter(t, p, "chain-2", "INTEGRITY_KEYS_FILE="+rotated)
	produce(t, p, chainRecord(p.tag, corr, now, "after-rotation"))
	testenv.Await(t, catchUpTimeout, "the event after the rotation stored", func() (bool, string) {
		n := storedCount(t, p)
		return n == 4, fmt.Sprintf("%d stored", n)
	})

	dropConstraint()
	replay := testenv.StartProcess(t, shared.replayer, []string{"replay"},
		"KAFKA_BROKERS="+strings.Join(shared.kafka.Brokers(), ","), "EVENTS_TOPIC="+p.events,
		"NOTIFICATIONS_TOPIC="+p.notifications, "DLQ_TOPIC="+p.dlq, "PARKED_TOPIC="+p.parked,
		"REPLAYER_GROUP="+p.group+".replayer", "LOG_LEVEL=warn")
	require.Equal(t, 0, replay.WaitExit(t, time.Minute), replay.Stderr.String())
	testenv.Await(t, catchUpTimeout, "the replayed event stored", func() (bool, string) {
		n := storedCount(t, p)
		return n == 5, fmt.Sprintf("%d stored", n)
	})

	chain := verifyChain(t, shared.db, loadKeys(t, rotated), corr, nil)
	var actions, keyIDs []string
	for _, e := range chain {
		actions, keyIDs = append(actions, e.EventAction), append(keyIDs, *e.HashKeyID)
	}
	require.Equal(t, []string{"first", "third", "backfilled", "after-rotation", refused}, actions,
		"storage order: the replayed event, two hours older, comes last")
	require.Equal(t, []string{"2025-01", "2025-01", "2025-01", "2025-06", "2025-06"}, keyIDs)
	// Without the old key the first events cannot be checked: the old
	// key must stay in the file as long as they are verified.
	v := loadKeys(t, keyFileOf(t, dir, added)).NewChainVerifier(corr, nil)
	require.Equal(t, integrity.BreakKey, v.Check(&chain[0]).Kind)
}

// dlqCount is how many records p's DLQ holds.
func dlqCount(t *testing.T, p pipeline) int64 {
	t.Helper()
	ends, err := shared.adm.ListEndOffsets(t.Context(), p.dlq)
	require.NoError(t, err)
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// keyFileOf writes a key file of key alone.
func keyFileOf(t *testing.T, dir string, key keyring.Key) string {
	t.Helper()
	path := filepath.Join(dir, key.ID+".yaml")
	require.NoError(t, os.WriteFile(path, keyring.Marshal(key), 0o600))
	return path
}

// TestChainOverlappingWriters: two writer processes consume the same
// records at once (each in its own consumer group: the overlap of a
// rebalance, for the whole stream): every event is stored once, and every
// chain is one unbroken sequence, whichever writer stored which event.
func TestChainOverlappingWriters(t *testing.T) {
	const total = 10_000
	p := newPipeline(t)
	a := startWriter(t, p, "overlap-a")
	b := startWriter(t, p, "overlap-b", "CONSUMER_GROUP="+p.group+".twin")
	a.awaitReady(30 * time.Second)
	b.awaitReady(30 * time.Second)
	s := startStream(t, p, total, 500, 20*time.Millisecond)
	want := s.wait(t, catchUpTimeout)
	seen := func(w *writerProc) float64 {
		rows, _ := w.metricIfExposed(`auditstream_writer_rows_written_total{table="audit_events"}`)
		dups, _ := w.metricIfExposed(`auditstream_writer_duplicates_total{table="audit_events"}`)
		return rows + dups
	}
	testenv.Await(t, catchUpTimeout, "both writers through every record", func() (bool, string) {
		sa, sb := seen(a), seen(b)
		return sa == total && sb == total, fmt.Sprintf("a saw %v, b saw %v of %d", sa, sb, total)
	})
	requireExactlyOnce(t, p, want)
	stored := a.metric(`auditstream_writer_rows_written_total{table="audit_events"}`) +
		b.metric(`auditstream_writer_rows_written_total{table="audit_events"}`)
	require.EqualValues(t, total, stored, "each event stored by one of the two")
	t.Logf("a stored %v, b stored %v", a.metric(`auditstream_writer_rows_written_total{table="audit_events"}`),
		b.metric(`auditstream_writer_rows_written_total{table="audit_events"}`))
	requireChains(t, p, loadKeys(t, shared.keys.KeysFile), 997)
}

// TestCheckpointsPublished: while events flow the writer publishes signed
// checkpoints of the moved chain heads to the topic and the table, one
// sequence chaining to each other, whose heads anchor the chains; a
// checkpoint recorded but never published (a writer that crashed in
// between) is published by the next writer to start.
func TestCheckpointsPublished(t *testing.T) {
	ctx := t.Context()
	pg := testenv.NewPostgres(t)
	db, err := pgxpool.New(ctx, pg.URL())
	require.NoError(t, err)
	t.Cleanup(db.Close)
	p := newPipeline(t)
	w := startWriter(t, p, "checkpoints-1", "DATABASE_URL="+pg.URL(), "CHECKPOINT_INTERVAL=1s")
	w.awaitReady(30 * time.Second)

	chains := []string{p.tag + "-a", p.tag + "-b", p.tag + "-c"}
	for round := range 3 {
		for _, c := range chains[:round+1] {
			produce(t, p, chainRecord(p.tag, c, time.Now(), fmt.Sprintf("round-%d", round)))
		}
		// Each round after a checkpoint covered the last: the heads
		// move again and are checkpointed again.
		awaitCheckpointed(t, db, round+1)
	}
	pub, err := integrity.LoadPublicKey(shared.keys.PublicKeyFile)
	require.NoError(t, err)
	cps := readCheckpoints(t, p, db, pub)
	require.GreaterOrEqual(t, len(cps), 3)

	// The last checkpointed head of each chain is its stored head, and
	// every head a checkpoint recorded anchors the stored chain.
	anchors := map[string][]integrity.Head{}
	for _, c := range cps {
		for _, h := range c.Heads {
			anchors[h.CorrelationID] = append(anchors[h.CorrelationID], h.Head)
		}
	}
	keys := loadKeys(t, shared.keys.KeysFile)
	for i, c := range chains {
		events := verifyChain(t, db, keys, c, anchors[c])
		require.Len(t, events, 3-i)
		last := anchors[c][len(anchors[c])-1]
		require.Equal(t, integrity.Head{Seq: int64(3 - i), Hash: events[len(events)-1].EventHash}, last, c)
	}
	require.Positive(t, w.metric("auditstream_integrity_checkpoints_published_total"))
	require.Zero(t, w.metric("auditstream_integrity_checkpoint_lag_seconds"), "every head covered")

	// A crash between the table and Kafka: the checkpoint is recorded (as
	// the writer records it) while no writer runs, and never published.
	w.signal(syscall.SIGTERM)
	require.Zero(t, w.WaitExit(t, gracePeriod), "exit status after SIGTERM")
	st, err := store.Open(ctx, store.Config{URL: pg.URL()})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	_, err = db.Exec(ctx, `UPDATE chain_heads SET checkpoint_id = NULL, pending_since = now() WHERE correlation_id = $1`, chains[0])
	require.NoError(t, err)
	signer, err := integrity.LoadSigner(shared.keys.SigningKeyFile)
	require.NoError(t, err)
	orphan, err := st.RecordCheckpoints(ctx, 100, func(prev store.PreviousCheckpoint, heads []integrity.CheckpointHead) ([]*integrity.SignedCheckpoint, error) {
		return integrity.SignCheckpoints(signer, "crashed-writer", time.Now(), prev.ID, prev.Hash, heads)
	})
	require.NoError(t, err)
	require.Len(t, orphan, 1)

	w = startWriter(t, p, "checkpoints-2", "DATABASE_URL="+pg.URL(), "CHECKPOINT_INTERVAL=1h")
	testenv.Await(t, catchUpTimeout, "the orphaned checkpoint published", func() (bool, string) {
		var published bool
		require.NoError(t, db.QueryRow(ctx, `SELECT published_at IS NOT NULL FROM integrity_checkpoints WHERE id = $1`, orphan[0].ID).Scan(&published))
		return published, fmt.Sprintf("checkpoint %d published: %v", orphan[0].ID, published)
	})
	again := readCheckpoints(t, p, db, pub)
	require.Equal(t, orphan[0].Document, again[len(again)-1].Document)
	require.Equal(t, "crashed-writer", again[len(again)-1].Writer)
}

// awaitCheckpointed waits until no chain head waits for a checkpoint,
// every checkpoint is published, and at least n exist.
func awaitCheckpointed(t *testing.T, db *pgxpool.Pool, n int) {
	t.Helper()
	testenv.Await(t, catchUpTimeout, fmt.Sprintf("%d checkpoints covering every head", n), func() (bool, string) {
		var pending, unpublished, total int
		require.NoError(t, db.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM chain_heads WHERE checkpoint_id IS NULL),
			(SELECT count(*) FROM integrity_checkpoints WHERE published_at IS NULL), (SELECT count(*) FROM integrity_checkpoints)`).
			Scan(&pending, &unpublished, &total))
		return pending == 0 && unpublished == 0 && total >= n,
			fmt.Sprintf("%d heads pending, %d of %d checkpoints unpublished", pending, unpublished, total)
	})
}

// readCheckpoints reads every checkpoint of p's topic, one per id (a
// republished one may appear twice), checks each signature with pub, the
// sequence, and that the table holds the same documents; it returns them
// in id order.
func readCheckpoints(t *testing.T, p pipeline, db *pgxpool.Pool, pub ed25519.PublicKey) []*integrity.SignedCheckpoint {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM integrity_checkpoints`).Scan(&n))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	byID := map[int64]*integrity.SignedCheckpoint{}
	var records []*kgo.Record
	for len(byID) < n {
		var err error
		records, err = testenv.ConsumeAll(ctx, shared.kafka.Brokers(), p.checkpoints, len(records)+n-len(byID))
		require.NoError(t, err)
		for _, r := range records {
			c, err := integrity.ParseCheckpoint(r.Value)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(c.ID), string(r.Key), "keyed by id")
			require.NoError(t, c.Verify(pub))
			if seen, ok := byID[c.ID]; ok {
				require.Equal(t, seen.Document, c.Document, "a repeat is the same document")
			}
			byID[c.ID] = c
		}
	}
	out := make([]*integrity.SignedCheckpoint, 0, n)
	var prev *integrity.SignedCheckpoint
	for id := int64(1); id <= int64(n); id++ {
		c, ok := byID[id]
		require.True(t, ok, "checkpoint %d on the topic", id)
		require.NoError(t, c.VerifyNext(prev))
		var doc []byte
		require.NoError(t, db.QueryRow(t.Context(), `SELECT document FROM integrity_checkpoints WHERE id = $1`, id).Scan(&doc))
		require.Equal(t, doc, c.Document)
		out = append(out, c)
		prev = c
	}
	return out
}
