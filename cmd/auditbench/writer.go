package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/eventgen"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
)

const writerSynopsis = `
Kafka -> PostgreSQL (issue items 3 and 4): a 12-partition topic is pre-filled
with --rows events as ingest-api publishes them (canonical JSON, UUIDv7
event_id, key correlation_id, its headers, lz4, acks=all). PostgreSQL runs
as a user runs it: fsync, synchronous_commit and full_page_writes on; only
memory is sized (shared_buffers 1GB). Then, each into a fresh, migrated
database of the same cluster:

  rawcopy  pgx CopyFrom of the same rows and columns as store.Write, 5,000
           rows per transaction (the writer's BATCH_SIZE), one connection,
           into CREATE TABLE ... (LIKE audit_events INCLUDING ALL): the same
           table shape with every index, nothing else; the ceiling
  writer   the real writer binary (go build, a process, its defaults, the
           hash chain and checkpoints on), from its first stored rows until
           its rows_written_total reaches --rows
  nochain  the same binary with INTEGRITY_DISABLED=true: the chain's cost
  traces   writer and nochain again, on --rows events whose correlation
           ids come as requests make them (--traces of them in flight, 8
           events each on average): a batch moves a head per 6 rows, where
           the first data set (ids at random over all the rows, the worst
           case) moves one per 1.5
  restart  the writer (static member, WRITER_INSTANCE_ID) is SIGKILLed
           while records keep coming and started again: seconds from the
           new process's start to its first stored rows; the same with
           GROUP_STATIC_MEMBERSHIP=false as the baseline (it waits for the
           dead member's session, GROUP_SESSION_TIMEOUT, to expire)
  backlog  --backlog-rows (1,000,000) records drained by the writer binary:
           its peak RSS (VmHWM, /proc, every 20 ms) and the RSS of the last
           quarter of the drain against the second (1 s samples)

Targets: writer rows/s >= 0.85 x rawcopy rows/s and >= 0.85 x nochain
rows/s (the chain costs under 15 %), for both data sets, all in the same run; restart < 2 s;
backlog peak RSS <= 200 MiB and not growing (last / second quarter < 1.10).
The rate from process start (start-up and the group join included) is
reported as well.`

type writerCmd struct {
	writerConfig `embed:""`
}

// writerConfig are the flags of the writer stage (also of all, prefixed
// writer-).
type writerConfig struct {
	Rows        int    `default:"200000" help:"Events in the pre-filled topic."`
	Rounds      int    `default:"5" help:"Rounds of the writer with the chain on and off, alternating which goes first; medians are reported."`
	BacklogRows int    `default:"1000000" help:"Events of the backlog whose drain's RSS is measured (0: skip)."`
	Traces      int    `default:"1000" help:"Correlation ids in flight in the second data set, whose chains' events come together as a request's do (0: skip it)."`
	Profile     string `placeholder:"FILE" help:"Write a 10 s CPU profile of the writer binary (chain on) from its first stored rows to FILE, and its heap at the end of the drain to FILE.heap (PPROF_ENABLED)."`
}

func (writerCmd) Help() string { return writerSynopsis }

func (c *writerCmd) Run(r *run) error {
	return r.record(writerStage(r.ctx, c.writerConfig, r.logf, r.env.Params))
}

// rawCopyTable is the baseline's table: audit_events' columns, defaults,
// constraints and every index, in a plain table.
const rawCopyTable = "audit_events_rawcopy"

func writerStage(ctx context.Context, cfg writerConfig, logf func(string, ...any), params map[string]string) ([]Result, error) {
	rows := cfg.Rows
	if rows < 1 || cfg.BacklogRows < 0 || cfg.Rounds < 1 {
		return nil, fmt.Errorf("writer: need --rows >= 1, --rounds >= 1 and --backlog-rows >= 0")
	}
	params["writer_rows"] = strconv.Itoa(rows)
	params["writer_backlog_rows"] = strconv.Itoa(cfg.BacklogRows)
	if _, err := binaries(logf); err != nil {
		return nil, err
	}
	st, err := startStack(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	params["stack"] = st.describe()
	for k, v := range durability(ctx, st.pg.URL()) {
		params["writer_pg_"+k] = v
	}

	events := eventgen.Events(rows, eventgen.Options{Seed: 2, IDs: true})
	start := time.Now()
	avg, err := prefill(ctx, st, st.topics.events, events)
	if err != nil {
		return nil, err
	}
	logf("writer: pre-filled %s (%d partitions) with %s events (avg %d bytes) in %s",
		st.topics.events, benchPartitions, thousands(int64(len(events))), avg, time.Since(start).Round(time.Millisecond))

	// Baseline: raw COPY.
	rawURL, dropRaw, err := st.freshDB(ctx, "rawcopy")
	if err != nil {
		return nil, err
	}
	logf("writer: rawcopy of %s rows into %s (LIKE audit_events INCLUDING ALL) ...", thousands(int64(len(events))), rawCopyTable)
	rawTook, err := rawCopy(ctx, rawURL, events, 5000)
	dropRaw()
	if err != nil {
		return nil, err
	}
	rawRate := float64(len(events)) / rawTook.Seconds()
	logf("writer: rawcopy %.0f rows/s (%s)", rawRate, rawTook.Round(time.Millisecond))

	// The writer binary, with and without the chain: the same records
	// (another consumer group each), each into a fresh database, in
	// --rounds rounds that alternate which goes first, so that neither
	// gets the warmer machine. A single pair swings by a tenth on two
	// shared cores; the medians are reported.
	var profile *drainProfile
	chainEnv := st.integrity.Env()
	if cfg.Profile != "" {
		profile = &drainProfile{file: cfg.Profile}
		chainEnv = append(chainEnv, "PPROF_ENABLED=true")
	}
	chained, noChain, ratios, err := chainRounds(ctx, st, len(events), cfg.Rounds, "", logf, profile, chainEnv)
	if err != nil {
		return nil, err
	}
	rounds := fmt.Sprintf("median of %d rounds", cfg.Rounds)
	results := []Result{
		{Name: "writer.rawcopy.rows_per_s", Value: rawRate, Unit: "rows/s",
			Notes: fmt.Sprintf("BASELINE: pgx CopyFrom of the same %s pre-built rows into %s (LIKE audit_events INCLUDING ALL), 5,000/tx, 1 conn, same cluster", thousands(int64(len(events))), rawCopyTable)},
		{Name: "writer.writer.rows_per_s", Value: chained.steady, Unit: "rows/s",
			Notes: "real writer binary, hash chain on, from its first rows written to the last (polls /metrics every 50 ms), " + rounds + "; vs writer.rawcopy.rows_per_s"},
		{Name: "writer.writer.rows_per_s_from_start", Value: chained.fromStart, Unit: "rows/s",
			Notes: fmt.Sprintf("same, from process start (start-up + group join %s included)", chained.startup.Round(time.Millisecond))},
		{Name: "writer.ratio.writer_vs_rawcopy", Value: chained.steady / rawRate, Unit: "x", Target: AtLeast(0.85),
			Notes: "writer.writer.rows_per_s / writer.rawcopy.rows_per_s"},
		{Name: "writer.nochain.rows_per_s", Value: noChain.steady, Unit: "rows/s",
			Notes: "BASELINE of the chain's cost: the same binary and records with INTEGRITY_DISABLED=true, " + rounds},
		{Name: "writer.ratio.chain_vs_nochain", Value: median(ratios), Unit: "x", Target: AtLeast(0.85),
			Notes: fmt.Sprintf("writer.writer.rows_per_s / writer.nochain.rows_per_s of the same round, median of %s: the chain costs under 15 %%; "+
				"correlation ids at random over the whole run, the worst case for the chain heads", formatRatios(ratios))},
		{Name: "writer.writer.heads_per_row", Value: chained.heads / float64(len(events)), Unit: "heads/row",
			Notes: "chain heads the batches moved (auditstream_writer_chain_heads_per_batch) / rows: one row of chain_heads updated per head per batch"},
	}
	results = append(results, costs("writer.writer", "chain on, "+rounds, chained, len(events))...)
	results = append(results, costs("writer.nochain", "chain off, "+rounds, noChain, len(events))...)
	results = append(results, procResults("writer", chained.proc, fmt.Sprintf("draining %s pre-filled rows", thousands(int64(len(events)))))...)

	// The same with correlation ids as requests make them: a chain's
	// events close together (eventgen's Traces), so a batch moves far
	// fewer heads than it has rows.
	if cfg.Traces > 0 {
		traced := eventgen.Events(rows, eventgen.Options{Seed: 2, IDs: true, Traces: cfg.Traces})
		if _, err := prefill(ctx, st, st.topics.traces, traced); err != nil {
			return results, err
		}
		logf("writer: pre-filled %s with %s events, %d traces in flight", st.topics.traces, thousands(int64(len(traced))), cfg.Traces)
		topic := "EVENTS_TOPIC=" + st.topics.traces
		tChained, tNoChain, tRatios, err := chainRounds(ctx, st, len(traced), cfg.Rounds, "traces-", logf, nil, slices.Concat(chainEnv, []string{topic}), topic)
		if err != nil {
			return results, err
		}
		what := fmt.Sprintf("%s events, %d correlation ids in flight (eventgen Traces)", thousands(int64(len(traced))), cfg.Traces)
		results = append(results,
			Result{Name: "writer.traces.rows_per_s", Value: tChained.steady, Unit: "rows/s",
				Notes: "the writer binary, chain on, " + what + ", " + rounds},
			Result{Name: "writer.traces_nochain.rows_per_s", Value: tNoChain.steady, Unit: "rows/s",
				Notes: "the same, INTEGRITY_DISABLED=true, " + rounds},
			Result{Name: "writer.ratio.chain_vs_nochain_traces", Value: median(tRatios), Unit: "x", Target: AtLeast(0.85),
				Notes: fmt.Sprintf("writer.traces.rows_per_s / writer.traces_nochain.rows_per_s of the same round, median of %s: the chain's cost when a correlation_id's events come together", formatRatios(tRatios))},
			Result{Name: "writer.traces.heads_per_row", Value: tChained.heads / float64(len(traced)), Unit: "heads/row",
				Notes: "chain heads the batches moved / rows, " + what})
		results = append(results, costs("writer.traces", "chain on, "+what+", "+rounds, tChained, len(traced))...)
		results = append(results, costs("writer.traces_nochain", "chain off, "+what+", "+rounds, tNoChain, len(traced))...)
	}

	restart, err := restartStage(ctx, st, logf)
	results = append(results, restart...)
	if err != nil {
		return results, err
	}
	if cfg.BacklogRows > 0 {
		backlog, err := backlogStage(ctx, st, cfg.BacklogRows, logf)
		results = append(results, backlog...)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// chainRounds drains the rows pre-filled records with the writer binary,
// chain on (with chainEnv) and off (with noChainEnv and
// INTEGRITY_DISABLED=true), each into a fresh database, in rounds that
// alternate which goes first. It returns the median drains and each
// round's ratio of the two rates; only the first round is profiled.
func chainRounds(ctx context.Context, st *stack, rows, rounds int, name string, logf func(string, ...any), profile *drainProfile, chainEnv []string, noChainEnv ...string) (drained, drained, []float64, error) {
	var chainedRuns, noChainRuns []drained
	var ratios []float64
	noChainEnv = append(noChainEnv, "INTEGRITY_DISABLED=true")
	for round := range rounds {
		chain := func() error {
			d, err := drainWithWriter(ctx, st, rows, name+"writer", logf, profile, chainEnv...)
			profile = nil
			chainedRuns = append(chainedRuns, d)
			return err
		}
		noChain := func() error {
			d, err := drainWithWriter(ctx, st, rows, name+"nochain", logf, nil, noChainEnv...)
			noChainRuns = append(noChainRuns, d)
			return err
		}
		first, second := chain, noChain
		if round%2 == 1 {
			first, second = noChain, chain
		}
		if err := first(); err != nil {
			return drained{}, drained{}, nil, err
		}
		if err := second(); err != nil {
			return drained{}, drained{}, nil, err
		}
		ratios = append(ratios, chainedRuns[round].steady/noChainRuns[round].steady)
		logf("writer: %sround %d: chain on / off %.3f", name, round+1, ratios[round])
	}
	return medianDrain(chainedRuns), medianDrain(noChainRuns), ratios, nil
}

// durability reads the settings that decide what a commit costs.
func durability(ctx context.Context, url string) map[string]string {
	facts := map[string]string{}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return facts
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_wal_size"} {
		var v string
		if conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v) == nil {
			facts[name] = v
		}
	}
	return facts
}

// drained is one writer binary's drain of the pre-filled topic.
type drained struct {
	steady, fromStart float64
	startup, cpu      time.Duration
	// dbCPU is PostgreSQL's CPU time, and walBytes the WAL it wrote, from
	// process start until the last row was stored.
	dbCPU    time.Duration
	walBytes int64
	// heads is the chain heads the writer's batches moved.
	heads float64
	proc  *proc
}

// costs are what a drain of rows cost per row: the writer's CPU, and
// PostgreSQL's CPU and WAL, which depend much less than rates on how the
// machine's cores are shared.
func costs(prefix, what string, d drained, rows int) []Result {
	n := float64(rows)
	return []Result{
		{Name: prefix + ".cpu_per_row", Value: float64(d.cpu.Microseconds()) / n, Unit: "us/row",
			Notes: "writer process CPU (whole life) / rows, " + what},
		{Name: prefix + ".db_cpu_per_row", Value: float64(d.dbCPU.Microseconds()) / n, Unit: "us/row",
			Notes: "PostgreSQL CPU (all its processes) from the writer's start to its last row / rows, " + what},
		{Name: prefix + ".wal_per_row", Value: float64(d.walBytes) / n, Unit: "bytes/row",
			Notes: "WAL PostgreSQL wrote from the writer's start to its last row / rows, " + what},
	}
}

// dbUsage returns the CPU time PostgreSQL has used so far and its WAL
// position in bytes.
func dbUsage(ctx context.Context, st *stack) (time.Duration, int64, error) {
	cpu, err := st.pg.CPU()
	if err != nil {
		return 0, 0, err
	}
	conn, err := pgx.Connect(ctx, st.pg.URL())
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	var lsn int64
	if err := conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&lsn); err != nil {
		return 0, 0, fmt.Errorf("wal position: %w", err)
	}
	return cpu, lsn, nil
}

// medianDrain returns the run with the median steady rate (the lower
// middle one of an even count).
func medianDrain(runs []drained) drained {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b drained) int { return cmp.Compare(a.steady, b.steady) })
	return s[(len(s)-1)/2]
}

// drainProfile asks drainWithWriter for the writer's profiles (its env
// must have PPROF_ENABLED).
type drainProfile struct {
	file string
	cpu  chan error
}

// drainWithWriter runs the writer binary (with env) into a fresh database
// until it has written rows rows, and measures it.
func drainWithWriter(ctx context.Context, st *stack, rows int, name string, logf func(string, ...any), profile *drainProfile, env ...string) (drained, error) {
	dbURL, drop, err := st.freshDB(ctx, name)
	if err != nil {
		return drained{}, err
	}
	defer drop()
	logf("writer: %s binary draining %s rows ...", name, thousands(int64(rows)))
	db0, wal0, err := dbUsage(ctx, st)
	if err != nil {
		return drained{}, err
	}
	procStart := time.Now()
	wp, metricsURL, err := st.startWriter(ctx, dbURL, "auditbench-"+name+"-"+randomID(), logf, env...)
	if err != nil {
		return drained{}, err
	}
	defer wp.stop()
	c := &http.Client{Timeout: 2 * time.Second}
	var first time.Time
	var firstRows float64
	deadline := time.Now().Add(30 * time.Minute)
	for {
		if err := wp.done(); err != nil {
			return drained{}, err
		}
		if err := ctx.Err(); err != nil {
			return drained{}, err
		}
		if time.Now().After(deadline) {
			return drained{}, fmt.Errorf("%s did not drain %d rows in 30 minutes", name, rows)
		}
		v, err := metricValue(c, metricsURL, writerRowsMetric)
		now := time.Now()
		if err == nil && v > 0 && first.IsZero() {
			first, firstRows = now, v
			if profile != nil {
				profile.cpu = make(chan error, 1)
				go func() { profile.cpu <- fetchProfile(wp, "profile?seconds=10", time.Minute, profile.file) }()
			}
		}
		if err == nil && v >= float64(rows) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	done := time.Now()
	// Exported with the chain off too, as a histogram without
	// observations.
	heads, err := metricValue(c, metricsURL, chainHeadsMetric)
	if err != nil {
		return drained{}, err
	}
	db1, wal1, err := dbUsage(ctx, st)
	if err != nil {
		return drained{}, err
	}
	if profile != nil {
		if err := fetchProfile(wp, "heap", time.Minute, profile.file+".heap"); err != nil {
			return drained{}, err
		}
		if err := <-profile.cpu; err != nil {
			return drained{}, err
		}
	}
	if err := wp.stop(); err != nil {
		return drained{}, err
	}
	if err := checkCount(ctx, dbURL, rows); err != nil {
		return drained{}, err
	}
	d := drained{fromStart: float64(rows) / done.Sub(procStart).Seconds(), startup: first.Sub(procStart), dbCPU: db1 - db0, walBytes: wal1 - wal0, heads: heads, proc: wp}
	d.steady = (float64(rows) - firstRows) / max(done.Sub(first).Seconds(), 1e-3)
	if firstRows >= float64(rows) {
		d.steady = d.fromStart // drained between two polls
	}
	_, d.cpu = wp.usage()
	logf("writer: %s %.0f rows/s steady, %.0f rows/s from process start", name, d.steady, d.fromStart)
	return d, nil
}

// prefill publishes events to topic as ingest-api does and returns the
// average record size.
func prefill(ctx context.Context, st *stack, topic string, events []audit.Event) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.kafka.Brokers()...),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	headers := []kgo.RecordHeader{
		{Key: kafka.HeaderContentType, Value: []byte("application/json")},
		{Key: kafka.HeaderSource, Value: []byte("ingest-api")},
	}
	var failed atomic.Value
	var wg sync.WaitGroup
	var total int
	for i := range events {
		e := &events[i]
		v := e.AppendJSON(nil)
		total += len(v)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(e.CorrelationID), Value: v, Headers: headers},
			func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Store(err)
				}
				wg.Done()
			})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, fmt.Errorf("pre-fill: %w", err)
	}
	return total / max(len(events), 1), nil
}

// rawCopy stores events with CopyFrom into rawCopyTable, batch rows per
// transaction, and returns the time it took (row building included, as
// the writer's is).
func rawCopy(ctx context.Context, dbURL string, events []audit.Event, batch int) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE TABLE "+rawCopyTable+" (LIKE audit_events INCLUDING ALL)"); err != nil {
		return 0, fmt.Errorf("raw copy table: %w", err)
	}
	start := time.Now()
	for lo := 0; lo < len(events); lo += batch {
		chunk := events[lo:min(lo+batch, len(events))]
		rows := make([][]any, len(chunk))
		for i := range chunk {
			rows[i] = store.EventRow(&chunk[i])
		}
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{rawCopyTable}, store.EventColumns(), pgx.CopyFromRows(rows))
			return err
		}); err != nil {
			return 0, fmt.Errorf("raw copy: %w", err)
		}
	}
	took := time.Since(start)
	return took, countRows(ctx, dbURL, rawCopyTable, len(events))
}

// checkCount fails unless audit_events holds exactly n rows.
func checkCount(ctx context.Context, dbURL string, n int) error {
	return countRows(ctx, dbURL, "audit_events", n)
}

// countRows fails unless table holds exactly n rows.
func countRows(ctx context.Context, dbURL, table string, n int) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var got int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&got); err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%s holds %d rows, want %d", table, got, n)
	}
	return nil
}
