package writer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// outageDuration is how long the test keeps PostgreSQL down.
const outageDuration = 10 * time.Second

// TestDatabaseOutage: PostgreSQL goes away while records stream in. The
// writer dead-letters nothing, reports the outage (metric and Check) while
// it lasts, and stores everything exactly once when the database is back.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	// A database of its own: stopping it must not disturb other tests.
	db := testenv.NewPostgres(t)
	_, err := store.Migrate(t.Context(), db.URL(), zap.NewNop())
	require.NoError(t, err)
	check, err := store.Open(t.Context(), store.Config{URL: db.URL(), MaxConns: 2, ConnectTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(check.Close)
	stored := func() int {
		var n int
		require.NoError(t, check.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_events`).Scan(&n))
		return n
	}

	tp := newTopics(t)
	r := startWriter(t, tp, rigOptions{batchSize: 50, maxBackoff: 500 * time.Millisecond, dbURL: db.URL()})
	p := prefix(t)

	// A producer streams records, half with an event_id and half
	// without, until told to stop.
	var produced atomic.Int64
	stopProducing := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			case <-tick.C:
			}
			e := minimalEvent(fmt.Sprintf("%s%05d", p, i))
			if i%2 == 0 {
				e = fullEvent(e.CorrelationID)
			}
			if err := env.kcl.ProduceSync(context.Background(), eventRecord(tp.events, e)).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			produced.Add(1)
		}
	})
	stop := sync.OnceFunc(func() { close(stopProducing); wg.Wait() })
	t.Cleanup(stop)

	eventually(t, 15*time.Second, func() bool { return stored() >= 20 }, "records flowing")
	require.NoError(t, r.w.Check(t.Context()))
	require.Zero(t, r.metric("auditstream_writer_outage"))

	stopCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, db.Stop(stopCtx))
	down := time.Now()
	atStop := produced.Load()

	// Observe the outage while it lasts.
	eventually(t, 10*time.Second, func() bool {
		return r.metric("auditstream_writer_outage") == 1 && r.w.Check(t.Context()) != nil
	}, "outage reported")
	require.GreaterOrEqual(t, r.metric("auditstream_writer_outages_total"), 1.0)
	for time.Since(down) < outageDuration {
		require.Equal(t, 1.0, r.metric("auditstream_writer_outage"), "outage gauge while the database is down")
		require.Error(t, r.w.Check(t.Context()), "Check fails while the database is down")
		require.Zero(t, r.metric("auditstream_writer_dead_letters_total", "class", "poison"))
		require.Zero(t, r.metric("auditstream_writer_dead_letters_total", "class", "failed"))
		time.Sleep(100 * time.Millisecond) // sampling interval, not synchronisation
	}
	require.Greater(t, produced.Load(), atStop+100, "records kept coming during the outage")

	require.NoError(t, db.Start(stopCtx))
	eventually(t, 20*time.Second, func() bool { return stored() >= int(produced.Load()) }, "catching up")
	stop()
	total := int(produced.Load())
	eventually(t, 20*time.Second, func() bool { return stored() == total }, "all %d records stored", total)
	eventually(t, 5*time.Second, func() bool {
		return r.metric("auditstream_writer_outage") == 0 && r.w.Check(t.Context()) == nil
	}, "outage over")

	var rows, distinct int
	require.NoError(t, check.Pool().QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT correlation_id) FROM audit_events WHERE correlation_id LIKE $1 || '%'`, p).Scan(&rows, &distinct))
	require.Equal(t, total, rows)
	require.Equal(t, total, distinct, "each record stored exactly once")
	require.Zero(t, endOffsets(t, tp.dlq), "nothing dead-lettered")
	require.Zero(t, r.metric("auditstream_writer_dead_letters_total", "class", "poison"))
	require.Zero(t, r.metric("auditstream_writer_dead_letters_total", "class", "failed"))
	require.Equal(t, float64(total), r.metric("auditstream_writer_rows_written_total", "table", "audit_events"))
}

// TestOutageAcrossRebalance: a rebalance while the database is down (a
// second writer joins, as in a rolling restart) must not leave the first
// writer's partitions paused once the database is back.
func TestOutageAcrossRebalance(t *testing.T) {
	t.Parallel()
	db := testenv.NewPostgres(t)
	_, err := store.Migrate(t.Context(), db.URL(), zap.NewNop())
	require.NoError(t, err)
	check, err := store.Open(t.Context(), store.Config{URL: db.URL(), MaxConns: 2, ConnectTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(check.Close)
	stored := func(prefix string) int {
		var n int
		require.NoError(t, check.Pool().QueryRow(t.Context(),
			`SELECT count(*) FROM audit_events WHERE correlation_id LIKE $1 || '%'`, prefix).Scan(&n))
		return n
	}

	tp := newTopics(t)
	opts := rigOptions{batchSize: 50, maxBackoff: 500 * time.Millisecond, dbURL: db.URL()}
	first := startWriter(t, tp, opts)
	p := prefix(t)

	// produceSpread sends n records and checks every partition got some.
	produceSpread := func(tag string, n int) {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = eventRecord(tp.events, minimalEvent(fmt.Sprintf("%s%s-%03d", p, tag, i)))
		}
		produce(t, recs...)
		parts := map[int32]bool{}
		for _, r := range recs {
			parts[r.Partition] = true
		}
		require.Len(t, parts, 3, "records in every partition")
	}

	produceSpread("before", 30)
	eventually(t, 15*time.Second, func() bool { return stored(p) == 30 }, "records flowing")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, db.Stop(ctx))
	produceSpread("down", 30)
	eventually(t, 10*time.Second, func() bool { return first.metric("auditstream_writer_outage") == 1 }, "outage reported")

	// A second writer joins the group while the first is paused.
	second := startWriter(t, tp, opts)
	eventually(t, 20*time.Second, func() bool {
		groups, err := env.admin.DescribeGroups(t.Context(), tp.group)
		if err != nil {
			return false
		}
		g := groups[tp.group]
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 {
				return false
			}
		}
		return true
	}, "both writers hold partitions")

	require.NoError(t, db.Start(ctx))
	produceSpread("after", 30)
	eventually(t, 30*time.Second, func() bool { return stored(p) == 90 }, "every partition consumed again; have %d of 90", func() int { return stored(p) })
	eventually(t, 10*time.Second, func() bool {
		return first.metric("auditstream_writer_outage") == 0 && second.metric("auditstream_writer_outage") == 0 &&
			first.w.Check(t.Context()) == nil && second.w.Check(t.Context()) == nil
	}, "outage over on both writers")
	require.Zero(t, endOffsets(t, tp.dlq))
}
