package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/testenv"
)

// retentionDB is a database of the test's own: retention acts on every
// partition, and the shared database holds other tests' old months.
func retentionDB(t *testing.T) (*Store, *testenv.Postgres) {
	t.Helper()
	db := testenv.NewPostgres(t)
	_, err := Migrate(t.Context(), db.URL(), zap.NewNop())
	require.NoError(t, err)
	return openStore(t, db.URL()), db
}

// storeAt writes n events of correlation_id corr at ts, each with
// retention days (nil: the default), and returns their ids.
func storeAt(t *testing.T, s *Store, corr string, ts time.Time, n int, days *int32) []uuid.UUID {
	t.Helper()
	events := make([]audit.Event, n)
	ids := make([]uuid.UUID, n)
	for i := range events {
		events[i] = testEvent(corr, ts.Add(time.Duration(i)*time.Minute))
		events[i].RetentionDays = days
		ids[i] = events[i].EventID
	}
	res, err := s.Write(t.Context(), events, nil)
	require.NoError(t, err)
	require.Equal(t, n, res.Events)
	return ids
}

func registeredIDs(t *testing.T, s *Store, ids []uuid.UUID) int {
	t.Helper()
	raw := make([][16]byte, len(ids))
	for i, id := range ids {
		raw[i] = id
	}
	var n int
	require.NoError(t, s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_event_ids WHERE event_id = ANY($1)`, raw).Scan(&n))
	return n
}

// yearsAgo is an hour into the month of that many years ago, so that a
// few events a minute apart stay in one partition.
func yearsAgo(years int) time.Time {
	return monthStart(time.Now().AddDate(-years, 0, 0)).Add(time.Hour)
}

func outcomes(run RetentionRun) map[string]string {
	m := map[string]string{}
	for _, o := range run.Outcomes {
		m[o.Partition] = o.Outcome
	}
	return m
}

// TestRetention: with RETENTION_DAYS 365, a partition goes when every
// event in it is past its own retention, with its ids and a record of
// the drop, never earlier; a hold keeps it until released.
func TestRetention(t *testing.T) {
	s, _ := retentionDB(t)
	ctx := t.Context()
	now := time.Now().UTC()
	month := func(daysAgo int) time.Time { return monthStart(now.AddDate(0, 0, -daysAgo)).Add(time.Hour) }

	expired := month(3 * 365)  // three years ago: past the default
	longKept := month(2 * 365) // past the default, but one event asks for seven years
	shortLived := month(90)    // within the default, every event asks for 30 days
	recent := month(180)       // within the default
	held := month(4 * 365)     // past the default, under a hold
	expiredIDs := storeAt(t, s, "rt-expired", expired, 3, nil)
	storeAt(t, s, "rt-long", longKept, 2, nil)
	storeAt(t, s, "rt-long", longKept.Add(time.Hour), 1, new(int32(2555)))
	shortIDs := storeAt(t, s, "rt-short", shortLived, 2, new(int32(30)))
	storeAt(t, s, "rt-recent", recent, 2, nil)
	heldIDs := storeAt(t, s, "rt-held", held, 2, nil)
	storeAt(t, s, "rt-other", held, 1, nil)

	hold, err := s.PlaceHold(ctx, "rt-held", "litigation", "legal", func(Hold) error { return nil })
	require.NoError(t, err)
	require.EqualValues(t, 2, hold.EventsAffected)

	ids := map[uuid.UUID]bool{}
	run, err := s.RunRetention(ctx, 365, func() uuid.UUID {
		id := uuid.New()
		ids[id] = true
		return id
	})
	require.NoError(t, err)
	require.False(t, run.Skipped)
	require.Equal(t, map[string]string{
		PartitionName(expired):    RetentionDropped,
		PartitionName(shortLived): RetentionDropped,
		PartitionName(held):       RetentionHeld,
	}, outcomes(run))
	for _, o := range run.Outcomes {
		switch o.Partition {
		case PartitionName(expired):
			require.EqualValues(t, 3, o.Events)
			require.True(t, ids[o.EventID], "the drop's event id is one newID gave")
			require.Equal(t, monthStart(expired), o.Start)
			require.Equal(t, monthStart(expired).AddDate(0, 1, 0), o.End)
		case PartitionName(held):
			require.Equal(t, []string{"rt-held"}, o.Held)
		}
	}
	require.False(t, partitionExists(t, s.Pool(), PartitionName(expired)))
	require.False(t, partitionExists(t, s.Pool(), PartitionName(shortLived)))
	for _, m := range []time.Time{longKept, recent, held} {
		require.True(t, partitionExists(t, s.Pool(), PartitionName(m)), PartitionName(m))
	}
	require.Zero(t, registeredIDs(t, s, expiredIDs), "the register forgets the dropped ids")
	require.Zero(t, registeredIDs(t, s, shortIDs))
	require.Equal(t, 2, registeredIDs(t, s, heldIDs))

	// The bookkeeping says what went, per chain.
	var events, chains int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT d.events, (SELECT count(*) FROM retention_dropped_chains c WHERE c.drop_id = d.id)
		FROM retention_drops d WHERE d.partition = $1`, PartitionName(expired)).Scan(&events, &chains))
	require.EqualValues(t, 3, events)
	require.EqualValues(t, 1, chains)
	dropped, err := s.DroppedFromChain(ctx, "rt-expired")
	require.NoError(t, err)
	require.Len(t, dropped, 1)
	require.Equal(t, PartitionName(expired), dropped[0].Partition)
	require.EqualValues(t, 3, dropped[0].Events)
	require.Equal(t, expired.UTC().Truncate(time.Microsecond), dropped[0].FirstTimestamp)
	require.Equal(t, expired.Add(2*time.Minute).UTC().Truncate(time.Microsecond), dropped[0].LastTimestamp)
	none, err := s.DroppedFromChain(ctx, "rt-recent")
	require.NoError(t, err)
	require.Empty(t, none)

	// Nothing changes on the next run but the hold being reported again.
	run, err = s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Equal(t, map[string]string{PartitionName(held): RetentionHeld}, outcomes(run))

	// A hold covers the correlation_id's later events too: once released,
	// the partition goes.
	_, err = s.ReleaseHold(ctx, "rt-held", "case closed", "legal", func(Release) error { return nil })
	require.NoError(t, err)
	run, err = s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Equal(t, map[string]string{PartitionName(held): RetentionDropped}, outcomes(run))
	require.Zero(t, registeredIDs(t, s, heldIDs))

	// A write into a dropped month creates its partition again.
	storeAt(t, s, "rt-late", expired, 1, nil)
	require.True(t, partitionExists(t, s.Pool(), PartitionName(expired)))
}

// TestRetentionKeepsRecentEmptyPartitions: a partition without events is
// dropped only once its whole period is past the default retention.
func TestRetentionKeepsRecentEmptyPartitions(t *testing.T) {
	s, _ := retentionDB(t)
	ctx := t.Context()
	now := time.Now().UTC()
	lastMonth := monthStart(now).AddDate(0, -1, 0)
	ancient := monthStart(now).AddDate(-8, 0, 0)
	require.NoError(t, s.EnsurePartitionsFor(ctx, lastMonth, ancient))
	run, err := s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Equal(t, map[string]string{PartitionName(ancient): RetentionDropped}, outcomes(run))
	require.True(t, partitionExists(t, s.Pool(), PartitionName(lastMonth)), "ready for late events")
}

// TestRetentionOneRunnerAtATime: while another process holds the retention
// lock, a run skips without error and changes nothing.
func TestRetentionOneRunnerAtATime(t *testing.T) {
	s, _ := retentionDB(t)
	ctx := t.Context()
	old := yearsAgo(4)
	storeAt(t, s, "rt-lock", old, 1, nil)
	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, retentionLockKey)
	require.NoError(t, err)

	run, err := s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.True(t, run.Skipped)
	require.True(t, partitionExists(t, s.Pool(), PartitionName(old)))

	_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, retentionLockKey)
	require.NoError(t, err)
	conn.Release()
	run, err = s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Equal(t, map[string]string{PartitionName(old): RetentionDropped}, outcomes(run))
}

// blockDrops opens a transaction that reads audit_events, as a long query
// does, so that a drop waits for it; release ends it.
func blockDrops(t *testing.T, url string) (release func()) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), `SELECT count(*) FROM audit_events`)
	require.NoError(t, err)
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback(context.Background())
			_ = conn.Close(context.Background())
		})
	}
	t.Cleanup(release)
	return release
}

// awaitDropWaiting waits until a retention function waits for a lock.
func awaitDropWaiting(t *testing.T, s *Store) {
	t.Helper()
	testenv.Await(t, 10*time.Second, "the drop waiting for its lock", func() (bool, string) {
		var n int
		err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%audit_events_retention_drop%'`).Scan(&n)
		return err == nil && n > 0, fmt.Sprint(n, err)
	})
}

// TestRetentionWaitsForReaders: a query reading audit_events while a
// partition is due is never interrupted; the drop waits for it at most
// the function's lock_timeout, gives up leaving everything in place, and
// goes at a later run.
func TestRetentionWaitsForReaders(t *testing.T) {
	s, db := retentionDB(t)
	ctx := t.Context()
	old := yearsAgo(4)
	ids := storeAt(t, s, "rt-reader", old, 2, nil)
	release := blockDrops(t, db.URL())

	run, err := s.RunRetention(ctx, 365, uuid.New)
	require.Error(t, err)
	require.True(t, lockedOut(err), "%v", err)
	require.Empty(t, run.Outcomes)
	require.True(t, partitionExists(t, s.Pool(), PartitionName(old)))
	require.Equal(t, 2, registeredIDs(t, s, ids), "the ids deleted before the DROP are back")

	release()
	run, err = s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Equal(t, map[string]string{PartitionName(old): RetentionDropped}, outcomes(run))
	require.Zero(t, registeredIDs(t, s, ids))
}

// TestRetentionAtomicWhenPostgresGoesAway: PostgreSQL stops while a drop
// is half-way (its ids deleted, the DROP waiting): after the restart the
// partition and its ids are both there, and the next run takes both.
func TestRetentionAtomicWhenPostgresGoesAway(t *testing.T) {
	s, db := retentionDB(t)
	ctx := t.Context()
	old := yearsAgo(4)
	ids := storeAt(t, s, "rt-outage", old, 3, nil)
	blockDrops(t, db.URL())

	done := make(chan error, 1)
	go func() {
		_, err := s.RunRetention(ctx, 365, uuid.New)
		done <- err
	}()
	awaitDropWaiting(t, s)
	require.NoError(t, db.Stop(ctx))
	require.Error(t, <-done)
	require.NoError(t, db.Start(ctx))
	s = openStore(t, db.URL()) // the old pool's connections died with the server

	require.True(t, partitionExists(t, s.Pool(), PartitionName(old)))
	require.Equal(t, 3, registeredIDs(t, s, ids))
	var drops int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM retention_drops`).Scan(&drops))
	require.Zero(t, drops)

	run, err := s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Equal(t, map[string]string{PartitionName(old): RetentionDropped}, outcomes(run))
	require.False(t, partitionExists(t, s.Pool(), PartitionName(old)))
	require.Zero(t, registeredIDs(t, s, ids))
}

// TestRetentionWhileQueried: queries running the whole time partitions are
// dropped all succeed.
func TestRetentionWhileQueried(t *testing.T) {
	s, _ := retentionDB(t)
	ctx := t.Context()
	for y := 3; y <= 7; y++ {
		storeAt(t, s, "rt-queried", yearsAgo(y), 20, nil)
	}
	storeAt(t, s, "rt-queried", time.Now().Add(-time.Hour), 20, nil)
	reader, err := query.NewReader(s.Pool(), query.Config{StatementTimeout: 5 * time.Second, CountCap: 1000})
	require.NoError(t, err)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	var queries [4]int
	for i := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				f := query.Filter{Equal: map[string]string{"correlation_id": "rt-queried"}}
				if i%2 == 1 {
					f = query.Filter{Since: time.Now().AddDate(-8, 0, 0)}
				}
				if _, err := reader.Stream(ctx, f, query.Page{Limit: 50}, func(*query.Event) (bool, error) { return true, nil }); err != nil {
					errs <- err
					return
				}
				queries[i]++
			}
		})
	}
	run, err := s.RunRetention(ctx, 365, uuid.New)
	close(stop)
	wg.Wait()
	close(errs)
	require.NoError(t, err)
	require.Len(t, run.Outcomes, 5)
	for err := range errs {
		require.NoError(t, err)
	}
	for i, n := range queries {
		require.Positive(t, n, "reader %d ran", i)
	}
	var stayed int
	_, err = reader.Stream(ctx, query.Filter{Equal: map[string]string{"correlation_id": "rt-queried"}}, query.Page{Limit: 100},
		func(*query.Event) (bool, error) { stayed++; return true, nil })
	require.NoError(t, err)
	require.Equal(t, 20, stayed, "the recent events stay")
}

// TestRetentionFunctionTakesNothingFromTheCaller: the default retention
// is bounded, and the time is the server's.
func TestRetentionFunctionTakesNothingFromTheCaller(t *testing.T) {
	s, _ := retentionDB(t)
	for _, days := range []int{0, 2556, -1} {
		_, err := s.Pool().Exec(t.Context(), `SELECT * FROM audit_events_retention_drop(now(), $1, gen_random_uuid())`, days)
		require.ErrorContains(t, err, "default_days must be 1 to 2555", "days %d", days)
	}
}

// TestUnrecordedDrops lists the drops whose audit event is not stored.
func TestUnrecordedDrops(t *testing.T) {
	s, db := retentionDB(t)
	ctx := t.Context()
	storeAt(t, s, "rt-unrecorded", yearsAgo(4), 2, nil)
	storeAt(t, s, "rt-unrecorded", yearsAgo(5), 1, nil)
	run, err := s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Len(t, run.Outcomes, 2)
	// As if they had been dropped a while ago.
	require.NoError(t, db.Exec(ctx, `ALTER TABLE retention_drops DISABLE TRIGGER retention_drops_append_only;
		UPDATE retention_drops SET dropped_at = dropped_at - interval '10 minutes';
		ALTER TABLE retention_drops ENABLE TRIGGER retention_drops_append_only`))

	drops, err := s.UnrecordedDrops(ctx, time.Hour)
	require.NoError(t, err)
	require.Len(t, drops, 2)
	// The first drop's event arrives.
	recorded := testEvent("auditstream:retention", time.Now())
	recorded.EventID = drops[0].EventID
	_, err = s.Write(ctx, []audit.Event{recorded}, nil)
	require.NoError(t, err)
	drops2, err := s.UnrecordedDrops(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, drops[1:], drops2)
	require.EqualValues(t, 365, drops2[0].DefaultDays)

	none, err := s.UnrecordedDrops(ctx, time.Minute)
	require.NoError(t, err)
	require.Empty(t, none, "outside the window")
}

// TestRetentionRecordsChainSeqs: what retention removes from a chain need
// not be its head. A chain of six stored in this order, the third to
// fifth backfilled four years back: the drop records that those three,
// chain_seq 3 to 5, went, and the chain's head moves on.
func TestRetentionRecordsChainSeqs(t *testing.T) {
	_, db := retentionDB(t)
	s := openChainStore(t, db.URL(), newChainKeys(t, "k1"))
	ctx := t.Context()
	storeAt(t, s, "rt-chain", time.Now().Add(-time.Hour), 2, nil)
	storeAt(t, s, "rt-chain", yearsAgo(4), 3, nil)
	storeAt(t, s, "rt-chain", time.Now().Add(-time.Minute), 1, nil)

	run, err := s.RunRetention(ctx, 365, uuid.New)
	require.NoError(t, err)
	require.Equal(t, map[string]string{PartitionName(yearsAgo(4)): RetentionDropped}, outcomes(run))
	dropped, err := s.DroppedFromChain(ctx, "rt-chain")
	require.NoError(t, err)
	require.Len(t, dropped, 1)
	require.EqualValues(t, 3, dropped[0].Events)
	require.Equal(t, int64(3), *dropped[0].MinChainSeq)
	require.Equal(t, int64(5), *dropped[0].MaxChainSeq)

	storeAt(t, s, "rt-chain", time.Now(), 1, nil)
	var last int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT max(chain_seq) FROM audit_events WHERE correlation_id = 'rt-chain'`).Scan(&last))
	require.Equal(t, int64(7), last, "the chain goes on after the drop, never reusing a chain_seq")
}

// DroppedEvents is what one retention drop removed from one chain (a
// correlation_id), as retention_dropped_chains keeps it.
type DroppedEvents struct {
	Partition string
	DroppedAt time.Time
	// Events is how many of the chain's events the partition held.
	Events                        int64
	FirstTimestamp, LastTimestamp time.Time
	// MinChainSeq and MaxChainSeq bound their chain_seq; nil when none had
	// one (stored before the chain, or with INTEGRITY_DISABLED).
	MinChainSeq, MaxChainSeq *int64
}

// DroppedFromChain lists what retention recorded it removed from the chain
// of correlationID, oldest drop first (verify-chain reads the same rows,
// internal/query's ReadChain). Retention drops by time and a chain numbers its
// events in storage order, so the events that went may be the chain's head
// or any others: a verifier explains the chain_seqs missing below and
// between the remaining events by these rows, when the missing ones number
// exactly the sum of Events and each lies within some row's
// [MinChainSeq, MaxChainSeq]; a gap they do not explain is tampering.
func (s *Store) DroppedFromChain(ctx context.Context, correlationID string) ([]DroppedEvents, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.partition, d.dropped_at, c.events, c.first_timestamp, c.last_timestamp,
			c.min_chain_seq, c.max_chain_seq
		FROM retention_dropped_chains c JOIN retention_drops d ON d.id = c.drop_id
		WHERE c.correlation_id = $1 ORDER BY d.id`, correlationID)
	if err != nil {
		return nil, fmt.Errorf("dropped events of %s: %w", correlationID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DroppedEvents, error) {
		var d DroppedEvents
		err := row.Scan(&d.Partition, &d.DroppedAt, &d.Events, &d.FirstTimestamp, &d.LastTimestamp, &d.MinChainSeq, &d.MaxChainSeq)
		d.DroppedAt, d.FirstTimestamp, d.LastTimestamp = d.DroppedAt.UTC(), d.FirstTimestamp.UTC(), d.LastTimestamp.UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("dropped events of %s: %w", correlationID, err)
	}
	return out, nil
}
