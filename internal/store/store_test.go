package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/testenv"
)

func TestMigrateEmptyConcurrentAndIdempotent(t *testing.T) {
	db := testenv.NewPostgres(t)
	ctx := t.Context()

	// Several binaries starting at once: all succeed, one applies.
	var g errgroup.Group
	versions := make([]uint, 3)
	for i := range versions {
		g.Go(func() error {
			v, err := Migrate(ctx, db.URL(), zap.NewNop())
			versions[i] = v
			return err
		})
	}
	require.NoError(t, g.Wait())
	require.Equal(t, []uint{latestVersion, latestVersion, latestVersion}, versions)

	// A later start finds nothing to do.
	v, err := Migrate(ctx, db.URL(), zap.NewNop())
	require.NoError(t, err)
	require.Equal(t, latestVersion, v)

	s := openStore(t, db.URL())
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1 AND NOT dirty`, latestVersion).Scan(&n))
	require.Equal(t, 1, n)

	// The migration created the partitions around now.
	now := time.Now()
	for m := -1; m <= 3; m++ {
		require.True(t, partitionExists(t, s.Pool(), PartitionName(now.AddDate(0, m, 0))), "month %+d", m)
	}
}

// latestVersion is the number of the newest embedded migration.
const latestVersion uint = 10

func TestMigrateUnreachableFailsFast(t *testing.T) {
	start := time.Now()
	_, err := Migrate(t.Context(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1", zap.NewNop())
	require.Error(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestSchema(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()

	tables := map[string]string{}
	rows, err := s.Pool().Query(ctx, `SELECT relname, relkind::text FROM pg_class WHERE relname = ANY($1) AND relnamespace = current_schema()::regnamespace`,
		[]string{"audit_events", "audit_event_ids", "notification_audit", "notification_audit_id_seq", "chain_heads", "integrity_checkpoints"})
	require.NoError(t, err)
	for rows.Next() {
		var name, kind string
		require.NoError(t, rows.Scan(&name, &kind))
		tables[name] = kind
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]string{
		"audit_events":              "p", // partitioned
		"audit_event_ids":           "r",
		"notification_audit":        "r",
		"notification_audit_id_seq": "S",
		"chain_heads":               "r",
		"integrity_checkpoints":     "r",
	}, tables)

	var indexes []string
	rows, err = s.Pool().Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_events' ORDER BY indexname`)
	require.NoError(t, err)
	for rows.Next() {
		var def string
		require.NoError(t, rows.Scan(&def))
		indexes = append(indexes, def)
	}
	require.NoError(t, rows.Err())
	for _, want := range []string{
		"(event_timestamp, event_id)",
		"(correlation_id, event_timestamp DESC, event_id DESC)",
		"(event_type, event_timestamp DESC, event_id DESC)",
		"(event_category, event_timestamp DESC, event_id DESC)",
		"(event_outcome, event_timestamp DESC, event_id DESC)",
		"(severity, event_timestamp DESC, event_id DESC) WHERE (severity IS NOT NULL)",
		"(actor_id, event_timestamp DESC, event_id DESC) WHERE (actor_id IS NOT NULL)",
		"(namespace, event_timestamp DESC, event_id DESC) WHERE (namespace IS NOT NULL)",
		"(resource_id, event_timestamp DESC, event_id DESC) WHERE (resource_id IS NOT NULL)",
		"(resource_type, event_timestamp DESC, event_id DESC) WHERE (resource_type IS NOT NULL)",
	} {
		require.True(t, containsSuffix(indexes, want), "no index %s in %q", want, indexes)
	}
	require.Len(t, indexes, 10, "migration 000010 dropped the chain's own index")

	// The filters of GET /events use their index, in result order.
	plan := explain(t, s.Pool(), `SELECT * FROM audit_events WHERE correlation_id = 'c' AND event_timestamp >= now() - interval '24 hours'
		ORDER BY event_timestamp DESC, event_id DESC LIMIT 50`)
	require.Contains(t, plan, "audit_events_p")
	require.Contains(t, plan, "correlation_id")
	require.NotContains(t, plan, "Sort Key")
}

func TestEventDateIsUTC(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	ts, err := time.Parse(time.RFC3339Nano, "2026-01-31T23:30:00.123456-05:00")
	require.NoError(t, err)
	require.NoError(t, s.EnsurePartitionsFor(ctx, ts))
	id := insertEvent(t, s.Pool(), ts)

	var date string
	var stored time.Time
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT event_date::text, event_timestamp FROM audit_events WHERE event_id = $1`, id).Scan(&date, &stored))
	require.Equal(t, "2026-02-01", date)
	require.True(t, ts.Equal(stored), "microseconds kept: %s vs %s", ts, stored)
	require.True(t, partitionHolds(t, s.Pool(), id, "audit_events_p202602"))
}

func TestEnsurePartitionsBackfill(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	from := time.Date(2019, 11, 15, 8, 0, 0, 0, time.UTC)
	to := time.Date(2020, 2, 3, 0, 0, 0, 0, time.UTC)
	dropPartitions(t, s.Pool(), "audit_events_p201911", "audit_events_p201912", "audit_events_p202001", "audit_events_p202002")

	old := time.Date(2019, 12, 24, 18, 0, 0, 0, time.UTC)
	_, err := s.Pool().Exec(ctx, insertEventSQL, uuid.New(), old)
	require.Error(t, err, "no partition for 2019-12 yet")
	require.Equal(t, errclass.Failed, Classify(err))

	require.NoError(t, s.EnsurePartitions(ctx, from, to))
	for _, name := range []string{"audit_events_p201911", "audit_events_p201912", "audit_events_p202001", "audit_events_p202002"} {
		require.True(t, partitionExists(t, s.Pool(), name), name)
	}
	require.False(t, partitionExists(t, s.Pool(), "audit_events_p202003"))
	require.NoError(t, s.EnsurePartitions(ctx, from, to), "idempotent")

	id := insertEvent(t, s.Pool(), old)
	require.True(t, partitionHolds(t, s.Pool(), id, "audit_events_p201912"))

	// The exact bounds: the last microsecond of January is January's.
	edge := time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond)
	id = insertEvent(t, s.Pool(), edge)
	require.True(t, partitionHolds(t, s.Pool(), id, "audit_events_p202001"))

	err = s.EnsurePartitions(ctx, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Now())
	require.ErrorContains(t, err, "spans more than")
	require.Error(t, s.EnsurePartitions(ctx, to, from))
}

func TestEnsurePartitionsForSparseTimes(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	ancient := time.Date(1, 3, 4, 5, 6, 7, 0, time.UTC)
	other := time.Date(1999, 7, 1, 0, 0, 0, 0, time.FixedZone("CEST", 2*3600)) // June 30 in UTC
	dropPartitions(t, s.Pool(), "audit_events_p000103", "audit_events_p199906")
	require.NoError(t, s.EnsurePartitionsFor(ctx, ancient, other, other, time.Now()))
	require.True(t, partitionExists(t, s.Pool(), "audit_events_p000103"))
	require.True(t, partitionExists(t, s.Pool(), "audit_events_p199906"))
	require.False(t, partitionExists(t, s.Pool(), "audit_events_p000104"), "no months in between")
	require.False(t, partitionExists(t, s.Pool(), "audit_events_p199907"))
	require.True(t, partitionHolds(t, s.Pool(), insertEvent(t, s.Pool(), ancient), "audit_events_p000103"))
	require.True(t, partitionHolds(t, s.Pool(), insertEvent(t, s.Pool(), other), "audit_events_p199906"))
	require.NoError(t, s.EnsurePartitionsFor(ctx))
}

func TestEnsurePartitionsConcurrent(t *testing.T) {
	ctx := t.Context()
	from := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2015, 12, 31, 0, 0, 0, 0, time.UTC)
	var names []string
	for m := range 12 {
		names = append(names, PartitionName(from.AddDate(0, m, 0)))
	}
	dropPartitions(t, openStore(t, pg.URL()).Pool(), names...)
	var g errgroup.Group
	for range 8 {
		s := openStore(t, pg.URL()) // separate pools: separate sessions
		g.Go(func() error { return s.EnsurePartitions(ctx, from, to) })
	}
	require.NoError(t, g.Wait())
	s := openStore(t, pg.URL())
	for m := range 12 {
		require.True(t, partitionExists(t, s.Pool(), PartitionName(from.AddDate(0, m, 0))))
	}
}

func TestEnsurePartitionFunctionUsesUTCMonths(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	// Whatever the session's time zone, months are UTC months.
	_, err = conn.Exec(ctx, `SET TimeZone = 'America/New_York'`)
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `RESET TimeZone`) }()
	dropPartitions(t, s.Pool(), "audit_events_p201103")
	var name string
	require.NoError(t, conn.QueryRow(ctx, `SELECT audit_events_ensure_partition('2011-03-01 02:00:00+00')`).Scan(&name))
	require.Equal(t, "audit_events_p201103", name)
	var bound string
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = $1`, name).Scan(&bound))
	require.Equal(t, "FOR VALUES FROM ('2011-02-28 19:00:00-05') TO ('2011-03-31 20:00:00-04')", bound)
}

func TestAppendOnly(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	ts := time.Date(2016, 5, 5, 5, 5, 5, 0, time.UTC)
	require.NoError(t, s.EnsurePartitionsFor(ctx, ts))
	id := insertEvent(t, s.Pool(), ts)

	for _, stmt := range []string{
		`UPDATE audit_events SET severity = 'x' WHERE event_id = $1`,
		`DELETE FROM audit_events WHERE event_id = $1`,
		`UPDATE audit_events_p201605 SET severity = 'x' WHERE event_id = $1`,
		`DELETE FROM audit_events_p201605 WHERE event_id = $1`,
	} {
		_, err := s.Pool().Exec(ctx, stmt, id)
		require.ErrorContains(t, err, "append-only", stmt)
	}
	_, err := s.Pool().Exec(ctx, `TRUNCATE audit_events`)
	require.ErrorContains(t, err, "append-only")

	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND severity IS NULL`, id).Scan(&n))
	require.Equal(t, 1, n)

	// Retention drops whole partitions.
	_, err = s.Pool().Exec(ctx, `DROP TABLE audit_events_p201605`)
	require.NoError(t, err)
	require.False(t, partitionExists(t, s.Pool(), "audit_events_p201605"))
}

func TestReserveNotification(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	nid := "notif-" + uuid.NewString()
	digest := sha256.Sum256([]byte("content"))
	other := sha256.Sum256([]byte("other content"))
	at := time.Now().UTC().Truncate(time.Microsecond)

	first, err := s.ReserveNotification(ctx, nid, digest, at)
	require.NoError(t, err)
	require.Equal(t, audit.Reserved, first.State)
	require.Positive(t, first.ID)
	require.Equal(t, at, first.CreatedAt)

	// The same content again is a retry: the holder's id and created_at.
	again, err := s.ReserveNotification(ctx, nid, digest, at.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, audit.Reservation{State: audit.Retried, ID: first.ID, CreatedAt: at}, again)
	// Other content is refused while the hold is younger than the TTL.
	held, err := s.ReserveNotification(ctx, nid, other, at)
	require.NoError(t, err)
	require.Equal(t, audit.Reservation{State: audit.HeldByOther}, held)

	// Concurrent reservations (any number of API replicas) never share an
	// id; of those racing for one notification_id with different content,
	// exactly one holds it.
	seen := map[int64]bool{first.ID: true}
	race := "notif-" + uuid.NewString()
	var mu sync.Mutex
	var g errgroup.Group
	reserved := 0
	for i := range 50 {
		g.Go(func() error {
			r, err := s.ReserveNotification(ctx, "notif-"+uuid.NewString(), digest, at)
			if err != nil {
				return err
			}
			raced, err := s.ReserveNotification(ctx, race, sha256.Sum256(fmt.Appendf(nil, "content %d", i)), at)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[r.ID] {
				return fmt.Errorf("id %d handed out twice", r.ID)
			}
			seen[r.ID] = true
			if raced.State == audit.Reserved {
				reserved++
			} else if raced.State != audit.HeldByOther {
				return fmt.Errorf("racing reservation: state %d", raced.State)
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	require.Equal(t, 1, reserved, "one holder among the racers")

	// Released (Kafka took nothing), the notification_id is free for any
	// content; a release naming another hold's id changes nothing.
	require.NoError(t, s.ReleaseNotification(ctx, nid, first.ID+1_000_000))
	held, err = s.ReserveNotification(ctx, nid, other, at)
	require.NoError(t, err)
	require.Equal(t, audit.HeldByOther, held.State)
	require.NoError(t, s.ReleaseNotification(ctx, nid, first.ID))
	taken, err := s.ReserveNotification(ctx, nid, other, at)
	require.NoError(t, err)
	require.Equal(t, audit.Reserved, taken.State)
	require.Greater(t, taken.ID, first.ID)

	// Past the TTL a hold whose record was never stored is taken over.
	expired := "notif-" + uuid.NewString()
	old := time.Now().Add(-DefaultReservationTTL - time.Minute).UTC().Truncate(time.Microsecond)
	_, err = s.ReserveNotification(ctx, expired, digest, old)
	require.NoError(t, err)
	over, err := s.ReserveNotification(ctx, expired, other, at)
	require.NoError(t, err)
	require.Equal(t, audit.Reserved, over.State)
	require.Equal(t, at, over.CreatedAt)
	// And pruning deletes what expired, nothing younger.
	_, err = s.ReserveNotification(ctx, "notif-"+uuid.NewString(), digest, old)
	require.NoError(t, err)
	pruned, err := s.PruneReservations(ctx)
	require.NoError(t, err)
	require.Positive(t, pruned)
	var left int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM notification_reservations WHERE reserved_at < now() - interval '24 hours'`).Scan(&left))
	require.Zero(t, left)
	again, err = s.ReserveNotification(ctx, expired, other, at)
	require.NoError(t, err)
	require.Equal(t, audit.Retried, again.State, "a young hold survives pruning")

	// Once stored, the notification_id is taken whatever the content.
	_, err = s.Pool().Exec(ctx, `INSERT INTO notification_audit
		(id, notification_id, remediation_id, recipient, channel, message_summary, status, sent_at)
		VALUES ($1, $2, 'r1', 'oncall@example.com', 'email', 'disk full', 'sent', now())`, taken.ID, nid)
	require.NoError(t, err)
	for _, d := range [][sha256.Size]byte{digest, other} {
		r, err := s.ReserveNotification(ctx, nid, d, at)
		require.NoError(t, err)
		require.Equal(t, audit.Reservation{State: audit.Stored}, r)
	}
	last := taken.ID
	for id := range seen {
		last = max(last, id)
	}

	// A direct producer's record without id gets one from the same sequence.
	var defaultID int64
	require.NoError(t, s.Pool().QueryRow(ctx, `INSERT INTO notification_audit
		(notification_id, remediation_id, recipient, channel, message_summary, status, sent_at)
		VALUES ($1, 'r1', 'oncall@example.com', 'slack', 'disk full', 'sent', now()) RETURNING id`, nid+"-direct").Scan(&defaultID))
	require.Greater(t, defaultID, last)

	// The writer's duplicate handling: the first stored wins, silently.
	tag, err := s.Pool().Exec(ctx, `INSERT INTO notification_audit
		(notification_id, remediation_id, recipient, channel, message_summary, status, sent_at)
		VALUES ($1, 'r2', 'x@example.com', 'email', 'again', 'sent', now()) ON CONFLICT (notification_id) DO NOTHING`, nid)
	require.NoError(t, err)
	require.Zero(t, tag.RowsAffected())
}

// TestPingOutage: Open does not need the database; Ping fails within its
// bound while PostgreSQL is down and works again once it is back.
func TestPingOutage(t *testing.T) {
	db := testenv.NewPostgres(t)
	ctx := t.Context()
	require.NoError(t, db.Stop(ctx))

	s := openStore(t, db.URL())
	requirePingFailsFast(t, s)
	_, err := s.ReserveNotification(ctx, "n", sha256.Sum256(nil), time.Now())
	require.Error(t, err)
	require.Equal(t, errclass.Outage, Classify(err))

	require.NoError(t, db.Start(ctx))
	require.NoError(t, s.Ping(ctx))
	_, err = Migrate(ctx, db.URL(), zap.NewNop())
	require.NoError(t, err)
	_, err = s.ReserveNotification(ctx, "n", sha256.Sum256(nil), time.Now())
	require.NoError(t, err)

	// Down with connections in the pool: they are found broken, not reused.
	require.NoError(t, db.Stop(ctx))
	requirePingFailsFast(t, s)
	_, err = s.ReserveNotification(ctx, "n", sha256.Sum256(nil), time.Now())
	require.Equal(t, errclass.Outage, Classify(err))

	require.NoError(t, db.Start(ctx))
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
	_, err = s.ReserveNotification(ctx, "n", sha256.Sum256(nil), time.Now())
	require.NoError(t, err)
}

func TestOpenUnreachableIsLazy(t *testing.T) {
	s, err := Open(t.Context(), Config{URL: "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable"})
	require.NoError(t, err)
	defer s.Close()
	requirePingFailsFast(t, s)

	_, err = Open(t.Context(), Config{})
	require.Error(t, err)
	_, err = Open(t.Context(), Config{URL: "postgres://%zz"})
	require.Error(t, err)
}

// TestClassifyRealErrors checks Classify on errors PostgreSQL really returns
// for the writer's tables.
func TestClassifyRealErrors(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	ts := time.Now()
	require.NoError(t, s.EnsurePartitionsFor(ctx, ts))

	nid := "classify-" + uuid.NewString()
	_, err := s.Pool().Exec(ctx, `INSERT INTO notification_audit (id, notification_id, remediation_id, recipient, channel, message_summary, status, sent_at)
		VALUES (nextval('notification_audit_id_seq'), $1, 'r', 'x', 'email', 's', 'sent', now())`, nid)
	require.NoError(t, err)

	cases := []struct {
		name string
		sql  string
		args []any
		want errclass.Class
	}{
		{"string too long", `INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome, correlation_id, event_data)
			VALUES (gen_random_uuid(), $1, repeat('v', 21), 't', 'c', 'a', 'success', 'c', '{}')`, []any{ts}, errclass.Poison},
		{"not null", `INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome, correlation_id, event_data)
			VALUES (gen_random_uuid(), $1, '1', 't', 'c', 'a', 'success', NULL, '{}')`, []any{ts}, errclass.Poison},
		{"invalid json", `SELECT 'not json'::jsonb`, nil, errclass.Poison},
		{"nul in text", `SELECT convert_from('\x00'::bytea, 'UTF8')`, nil, errclass.Poison},
		{"check (enum)", `INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome, correlation_id, event_data)
			VALUES (gen_random_uuid(), $1, '1', 't', 'c', 'a', 'maybe', 'c', '{}')`, []any{ts}, errclass.Failed},
		{"id clash with another notification", `INSERT INTO notification_audit (id, notification_id, remediation_id, recipient, channel, message_summary, status, sent_at)
			SELECT id, $1, 'r', 'x', 'email', 's', 'sent', now() FROM notification_audit WHERE notification_id = $2
			ON CONFLICT (notification_id) DO NOTHING`, []any{nid + "-other", nid}, errclass.Poison},
		{"undefined table", `SELECT * FROM no_such_table`, nil, errclass.Outage},
		{"statement timeout", `SET LOCAL statement_timeout = '10ms'; SELECT pg_sleep(1)`, nil, errclass.Outage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.args == nil {
				// Simple protocol for multi-statement cases.
				_, err = s.Pool().Exec(ctx, tc.sql, pgx.QueryExecModeSimpleProtocol)
			} else {
				_, err = s.Pool().Exec(ctx, tc.sql, tc.args...)
			}
			require.Error(t, err)
			require.Equal(t, tc.want, Classify(err), "%v", err)
		})
	}

	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = s.Pool().Exec(cctx, `SELECT pg_sleep(2)`)
	require.Error(t, err)
	require.Equal(t, errclass.Outage, Classify(err), "%v", err)
}

func requirePingFailsFast(t *testing.T, s *Store) {
	t.Helper()
	start := time.Now()
	// No deadline from the caller: Ping bounds itself.
	err := s.Ping(context.Background())
	require.Error(t, err)
	require.Less(t, time.Since(start), 4*time.Second, "ping took %s", time.Since(start))
	require.Equal(t, errclass.Outage, Classify(err), "%v", err)
}

const insertEventSQL = `INSERT INTO audit_events
	(event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome, correlation_id, event_data)
	VALUES ($1, $2, '1.0', 'test.event', 'gateway', 'create', 'success', 'corr', '{"k": 1}')`

func insertEvent(t *testing.T, pool *pgxpool.Pool, ts time.Time) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := pool.Exec(t.Context(), insertEventSQL, id, ts)
	require.NoError(t, err)
	return id
}

// dropPartitions drops partitions a test creates, so that it starts from
// the same state when run again (-count) on the shared database.
func dropPartitions(t *testing.T, pool *pgxpool.Pool, names ...string) {
	t.Helper()
	for _, name := range names {
		_, err := pool.Exec(t.Context(), "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
		require.NoError(t, err)
	}
}

func partitionExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'audit_events'::regclass AND inhrelid = to_regclass($1))`, name).Scan(&ok))
	return ok
}

func partitionHolds(t *testing.T, pool *pgxpool.Pool, id uuid.UUID, partition string) bool {
	t.Helper()
	var got string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT tableoid::regclass::text FROM audit_events WHERE event_id = $1`, id).Scan(&got))
	return got == partition
}

func explain(t *testing.T, pool *pgxpool.Pool, query string) string {
	t.Helper()
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	// The tables are nearly empty; make the planner cost them as large.
	_, err = conn.Exec(ctx, `SET enable_seqscan = off`)
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `RESET enable_seqscan`) }()
	rows, err := conn.Query(ctx, "EXPLAIN "+query)
	require.NoError(t, err)
	var plan string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan += line + "\n"
	}
	require.NoError(t, rows.Err())
	return plan
}

func containsSuffix(list []string, suffix string) bool {
	for _, s := range list {
		if len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}
