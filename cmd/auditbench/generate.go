package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditstream/auditstream/internal/eventgen"
	"github.com/auditstream/auditstream/internal/store"
)

// generateSQL inserts rows $1..$2 (0-based row numbers) of the data set into
// audit_event_ids and audit_events in one statement. Row i has timestamp
// $3 + i*$4 µs plus jitter below one step, so rows arrive in time order
// (as a live writer's do) and the newest is about $3 + rows*step.
//
// Distributions (each column draws its own random number):
//   - event_type: 50 types, skewed (type k is drawn with probability
//     ~ sqrt((k+1)/50) - sqrt(k/50): the commonest ~14%, the rarest ~1%);
//     category and action follow from the type.
//   - event_outcome: success 85%, failure 10%, pending 5%.
//   - severity: null 20%, info 40%, warning 15%, debug 12%, error 10%, critical 3%.
//   - correlation_id: 10 consecutive rows share one (a remediation request).
//   - actor: user (2,000 ids) 60%, service (50 ids) 35%, none 5%.
//   - resource: 8 types × 100,000 ids, none 10%; namespace: 40 values, none 15%.
//   - event_id: UUIDv7 layout (48-bit ms timestamp first), as ingest-api
//     assigns them.
const generateSQL = `
WITH g AS MATERIALIZED (
	SELECT i,
		$3::timestamptz + make_interval(secs => (i * $4::float8 + random() * $4::float8) / 1e6) AS ts,
		md5('auditbench-' || i) AS h,
		random() AS r_type, random() AS r_outcome, random() AS r_severity, random() AS r_actor,
		random() AS r_actor_id, random() AS r_resource, random() AS r_resource_id, random() AS r_ns,
		random() AS r_duration, random() AS r_data
	FROM generate_series($1::bigint, $2::bigint) AS i
), rows AS (
	SELECT g.*,
		(lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid AS event_id,
		1 + least(floor(r_type * r_type * $5::int)::int, $5::int - 1) AS t
	FROM g
), ids AS (
	INSERT INTO audit_event_ids (event_id, event_timestamp)
	SELECT event_id, ts FROM rows
)
INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action,
	event_outcome, correlation_id, actor_type, actor_id, resource_type, resource_id, parent_event_id,
	namespace, cluster_name, severity, duration_ms, event_data, ingested_at)
SELECT event_id, ts, '1.0', ($6::text[])[t], ($7::text[])[t], ($8::text[])[t],
	CASE WHEN r_outcome < 0.85 THEN 'success' WHEN r_outcome < 0.95 THEN 'failure' ELSE 'pending' END,
	'rr-' || substr(md5('corr-' || (i / 10)), 1, 20),
	CASE WHEN r_actor < 0.60 THEN 'user' WHEN r_actor < 0.95 THEN 'service' END,
	CASE WHEN r_actor < 0.60 THEN 'user-' || floor(r_actor_id * 2000)::int
	     WHEN r_actor < 0.95 THEN 'svc-' || floor(r_actor_id * 50)::int END,
	CASE WHEN r_resource < 0.90 THEN (ARRAY['pod','deployment','node','service','configmap','statefulset','job','ingress'])[1 + floor(r_resource / 0.90 * 8)::int] END,
	CASE WHEN r_resource < 0.90 THEN 'res-' || floor(r_resource_id * 100000)::int END,
	CASE WHEN i % 10 <> 0 THEN md5('parent-' || (i / 10))::uuid END,
	CASE WHEN r_ns >= 0.15 THEN 'ns-' || floor(r_ns * 40)::int END,
	'cluster-' || (i % 4),
	CASE WHEN r_severity < 0.20 THEN NULL WHEN r_severity < 0.60 THEN 'info' WHEN r_severity < 0.75 THEN 'warning'
	     WHEN r_severity < 0.87 THEN 'debug' WHEN r_severity < 0.97 THEN 'error' ELSE 'critical' END,
	CASE WHEN r_duration >= 0.30 THEN floor(r_duration ^ 3 * 5000)::bigint END,
	jsonb_build_object('signal', 'sig-' || floor(r_data * 1000)::int, 'attempt', 1 + i % 3,
		'labels', jsonb_build_object('team', 'team-' || floor(r_data * 20)::int, 'env', CASE WHEN i % 5 = 0 THEN 'staging' ELSE 'production' END)),
	ts + interval '40 milliseconds'
FROM rows`

// dataset describes the generated rows.
type dataset struct {
	rows      int64
	span      time.Duration
	newest    time.Time
	chunkSize int64
}

// generate fills an empty database with d.rows rows ending about now and
// returns how long the inserts and the VACUUM ANALYZE took.
func generate(ctx context.Context, db *store.Store, d dataset, logf func(string, ...any)) (insert, vacuum time.Duration, err error) {
	pool := db.Pool()
	start := d.newest.Add(-d.span)
	stepMicros := float64(d.span.Microseconds()) / float64(d.rows)
	if err := db.EnsurePartitions(ctx, start, d.newest); err != nil {
		return 0, 0, err
	}
	types := eventgen.Types()
	names, cats, actions := make([]string, len(types)), make([]string, len(types)), make([]string, len(types))
	for i, t := range types {
		names[i], cats[i], actions[i] = t.Name, t.Category, t.Action
	}

	// One transaction: an interrupted run leaves no partial data set (and
	// no missing index) behind for a later --reuse to measure.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Maintaining every secondary index row by row costs most of the
	// insert time (random B-tree inserts: ~7k rows/s on a 2-core machine);
	// building them once afterwards from their own definitions is several
	// times faster. The primary key stays (rows arrive in its order).
	indexes, err := secondaryIndexes(ctx, tx)
	if err != nil {
		return 0, 0, err
	}
	for _, ix := range indexes {
		if _, err := tx.Exec(ctx, "DROP INDEX "+ix.name); err != nil {
			return 0, 0, fmt.Errorf("drop index %s for the load: %w", ix.name, err)
		}
	}
	began := time.Now()
	for lo := int64(0); lo < d.rows; lo += d.chunkSize {
		hi := min(lo+d.chunkSize, d.rows) - 1
		t := time.Now()
		if _, err := tx.Exec(ctx, generateSQL, lo, hi, start, stepMicros, len(types), names, cats, actions); err != nil {
			return 0, 0, fmt.Errorf("insert rows %d..%d: %w", lo, hi, err)
		}
		done := hi + 1
		elapsed := time.Since(began)
		eta := time.Duration(float64(elapsed) / float64(done) * float64(d.rows-done))
		logf("  generated %11s / %s rows  (chunk %s, %.0f rows/s, eta %s + indexes)", thousands(done), thousands(d.rows),
			time.Since(t).Round(time.Millisecond), float64(done)/elapsed.Seconds(), eta.Round(time.Second))
	}
	if _, err := tx.Exec(ctx, "SET LOCAL maintenance_work_mem = '512MB'"); err != nil {
		return 0, 0, err
	}
	for _, ix := range indexes {
		t := time.Now()
		// pg_get_indexdef renders a partitioned index "ON ONLY" the
		// parent (no partition gets one; the index stays invalid).
		def := strings.Replace(ix.def, " ON ONLY ", " ON ", 1)
		if _, err := tx.Exec(ctx, def); err != nil {
			return 0, 0, fmt.Errorf("rebuild index %s: %w", ix.name, err)
		}
		logf("  built index %s in %s", ix.name, time.Since(t).Round(time.Millisecond))
	}
	if err := checkIndexesValid(ctx, tx); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("commit generated rows: %w", err)
	}
	insert = time.Since(began)

	t := time.Now()
	logf("  VACUUM ANALYZE ...")
	if err := vacuumAnalyze(ctx, pool); err != nil {
		return insert, 0, err
	}
	vacuum = time.Since(t)
	logf("  VACUUM ANALYZE done in %s", vacuum.Round(time.Millisecond))
	return insert, vacuum, nil
}

type indexDef struct{ name, def string }

// secondaryIndexes returns the indexes of audit_events other than its
// primary key, with the statements that create them.
func secondaryIndexes(ctx context.Context, tx pgx.Tx) ([]indexDef, error) {
	rows, err := tx.Query(ctx, `SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
		FROM pg_index WHERE indrelid = 'audit_events'::regclass AND NOT indisprimary ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	defs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (indexDef, error) {
		var d indexDef
		return d, r.Scan(&d.name, &d.def)
	})
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	return defs, nil
}

// checkIndexesValid fails if any index of audit_events or its partitions
// is invalid: latencies measured without an index mean nothing.
func checkIndexesValid(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	var invalid []string
	err := q.QueryRow(ctx, `SELECT coalesce(array_agg(i.indexrelid::regclass::text ORDER BY 1), '{}')
		FROM pg_index i JOIN pg_partition_tree('audit_events') p ON p.relid = i.indrelid
		WHERE NOT i.indisvalid`).Scan(&invalid)
	if err != nil {
		return fmt.Errorf("check indexes: %w", err)
	}
	if len(invalid) > 0 {
		return fmt.Errorf("invalid indexes on audit_events: %s", strings.Join(invalid, ", "))
	}
	return nil
}

// vacuumAnalyze sets the visibility map (so counts are index-only scans, as
// on a table autovacuum keeps up with) and gathers statistics.
func vacuumAnalyze(ctx context.Context, pool *pgxpool.Pool) error {
	for _, table := range []string{"audit_events", "audit_event_ids"} {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
			return fmt.Errorf("vacuum analyze %s: %w", table, err)
		}
	}
	return nil
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
