package writer

// Throughput benchmarks of the writer (see bench/README.md for how to run
// them and what they measured):
//
//   - BenchmarkWriterDrain: rows/s from a pre-filled 12-partition topic into
//     PostgreSQL by the writer, next to raw pgx CopyFrom of the same rows into
//     audit_events in the same run, and the writer binary's peak RSS.
//   - BenchmarkWriteSQLPath: the SQL side alone (no Kafka), the store's
//     staged path against alternatives, to find where the gap to raw COPY is.
//
// Both start their own embedded Kafka and PostgreSQL (no TestMain needed)
// and a fresh, migrated database for every leg, so each leg writes into an
// empty audit_events with all its indexes, as a new deployment would.
//
// Knobs (environment, so they cannot clash with test flags):
//   - BENCH_WRITER_ROWS: rows per leg (default 200000).
//   - BENCH_WRITER_BINARY=0: skip the writer-binary leg of BenchmarkWriterDrain.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/eventgen"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

const (
	benchEventsTopic        = "audit.events"
	benchNotificationsTopic = "audit.notifications"
	benchDLQTopic           = "audit.dlq"
	benchPartitions         = 12
	benchBatchSize          = 5000
	benchBatchAge           = 100 * time.Millisecond
)

func benchRows(b *testing.B) int {
	if s := os.Getenv("BENCH_WRITER_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_WRITER_ROWS=%q: want a positive integer", s)
		}
		return n
	}
	return 200_000
}

// ---------------------------------------------------------------------------
// Realistic events.

// ---------------------------------------------------------------------------
// Services.

// benchEnv is one benchmark's Kafka (topic pre-filled with events) and
// PostgreSQL server; every leg gets a fresh database on that server.
type benchEnv struct {
	kafka  *testenv.Kafka
	pg     *testenv.Postgres
	events []audit.Event
	bytes  int64 // total value bytes in the topic
	dbSeq  atomic.Int64
}

func benchStart(b *testing.B, prefill bool) *benchEnv {
	b.Helper()
	ctx := b.Context()
	n := benchRows(b)
	// As the API publishes them: ids assigned at acceptance, timestamps of
	// the last minutes, about half with a parent.
	env := &benchEnv{events: eventgen.Events(n, eventgen.Options{Seed: 1, IDs: true, Spread: 10 * time.Minute, Parents: true})}
	var err error
	env.pg, err = testenv.StartPostgres(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.pg.Close() })
	if !prefill {
		return env
	}
	env.kafka, err = testenv.StartKafka(ctx, map[string]int32{
		benchEventsTopic: benchPartitions, benchNotificationsTopic: benchPartitions, benchDLQTopic: benchPartitions,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.kafka.Close() })
	env.prefill(b)
	return env
}

// prefill publishes every event as the API does: key correlation_id, its
// two headers, lz4, acks=all, partitioned by key hash.
func (env *benchEnv) prefill(b *testing.B) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.kafka.Brokers()...),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	headers := []kgo.RecordHeader{
		{Key: kafka.HeaderContentType, Value: []byte("application/json")},
		{Key: kafka.HeaderSource, Value: []byte("ingest-api")},
	}
	var failed atomic.Value
	var wg sync.WaitGroup
	minSize, maxSize := 1<<30, 0
	for i := range env.events {
		e := &env.events[i]
		v := e.AppendJSON(nil)
		env.bytes += int64(len(v))
		minSize, maxSize = min(minSize, len(v)), max(maxSize, len(v))
		wg.Add(1)
		cl.Produce(b.Context(), &kgo.Record{Topic: benchEventsTopic, Key: []byte(e.CorrelationID), Value: v, Headers: headers},
			func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Store(err)
				}
				wg.Done()
			})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("prefill: %v", err)
	}
	b.Logf("pre-filled %s (%d partitions) with %d events, %d-%d bytes, avg %d bytes, in %s",
		benchEventsTopic, benchPartitions, len(env.events), minSize, maxSize, env.bytes/int64(len(env.events)),
		time.Since(start).Round(time.Millisecond))
}

// freshDB creates a migrated database on the benchmark's server and returns
// its URL and a function dropping it.
func (env *benchEnv) freshDB(b *testing.B) (string, func()) {
	b.Helper()
	ctx := b.Context()
	name := fmt.Sprintf("bench_%d_%d", os.Getpid(), env.dbSeq.Add(1))
	admin, err := pgx.Connect(ctx, env.pg.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(env.pg.URL())
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	if _, err := store.Migrate(ctx, u.String(), zap.NewNop()); err != nil {
		b.Fatal(err)
	}
	return u.String(), func() {
		c, err := pgx.Connect(context.Background(), env.pg.URL())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			b.Error(err)
		}
	}
}

func benchPool(b *testing.B, dbURL string, maxConns int32) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	return pool
}

// checkStored fails unless audit_events and audit_event_ids hold exactly n rows.
func benchCheckStored(b *testing.B, dbURL string, n int) {
	b.Helper()
	c, err := pgx.Connect(b.Context(), dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	var events, ids int
	if err := c.QueryRow(b.Context(), `SELECT (SELECT count(*) FROM audit_events), (SELECT count(*) FROM audit_event_ids)`).
		Scan(&events, &ids); err != nil {
		b.Fatal(err)
	}
	if events != n || (ids != n && ids != 0) {
		b.Fatalf("stored %d events and %d ids, want %d", events, ids, n)
	}
}

// ---------------------------------------------------------------------------
// Legs.

// rawCopy stores events with plain pgx CopyFrom into audit_events, batch
// rows per transaction: the ceiling the writer is measured against.
func (env *benchEnv) rawCopy(b *testing.B, batch int) benchLeg {
	dbURL, drop := env.freshDB(b)
	defer drop()
	pool := benchPool(b, dbURL, 1)
	defer pool.Close()
	ctx := b.Context()
	if err := pool.Ping(ctx); err != nil {
		b.Fatal(err)
	}
	cpu0, self0 := env.pgCPU(b), benchSelfCPU()
	start := time.Now()
	for lo := 0; lo < len(env.events); lo += batch {
		chunk := env.events[lo:min(lo+batch, len(env.events))]
		rows := make([][]any, len(chunk))
		for i := range chunk {
			rows[i] = store.EventRow(&chunk[i])
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, store.EventColumns(), pgx.CopyFromRows(rows))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	leg := benchLeg{took: time.Since(start), dbCPU: env.pgCPU(b) - cpu0, selfCPU: benchSelfCPU() - self0}
	benchCheckStored(b, dbURL, len(env.events))
	return leg
}

// benchLeg is what one leg took: wall time, PostgreSQL server CPU, and
// this process's CPU.
type benchLeg struct {
	took, dbCPU, selfCPU time.Duration
	// walBytes is the WAL PostgreSQL wrote meanwhile: what a commit
	// flushes and a replica receives, and unlike CPU time it does not
	// depend on what else runs on the machine.
	walBytes int64
}

// benchWAL returns the server's WAL position in bytes.
func benchWAL(b *testing.B, pool *pgxpool.Pool) int64 {
	var lsn int64
	if err := pool.QueryRow(b.Context(), `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&lsn); err != nil {
		b.Fatal(err)
	}
	return lsn
}

func benchSelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timedStore wraps the store to count stored rows and the time spent in
// Write, so a leg knows when it is done without querying the database and
// how much of the wall time the database path took.
type benchTimedStore struct {
	rowStore
	rows    atomic.Int64
	writes  atomic.Int64
	writeNS atomic.Int64
	first   atomic.Int64 // unix ns of the first successful Write's end
}

func (s *benchTimedStore) Write(ctx context.Context, events []audit.Event, ns []audit.Notification) (store.WriteResult, error) {
	start := time.Now()
	res, err := s.rowStore.Write(ctx, events, ns)
	end := time.Now()
	s.writeNS.Add(int64(end.Sub(start)))
	s.writes.Add(1)
	if err == nil {
		s.first.CompareAndSwap(0, end.UnixNano())
		s.rows.Add(int64(res.Events + res.EventDuplicates))
	}
	return res, err
}

// benchNoDLQ fails the benchmark: every generated record is valid.
type benchNoDLQ struct{ b *testing.B }

func (d benchNoDLQ) Publish(topic string, msgs ...*message.Message) error {
	d.b.Errorf("benchmark records dead-lettered to %s: %d, first %s", topic, len(msgs), msgs[0].UUID)
	return nil
}

type drainResult struct {
	benchLeg                // took: Run start to the last row stored
	joined    time.Duration // Run start to the first batch committed
	writeTime time.Duration // sum of Write calls
	writes    int64
}

// inProcess runs the writer in this process against a fresh database until
// every pre-filled record is stored. With st nil it uses the real store; a
// non-nil factory substitutes the row store (e.g. a no-op, to measure
// Kafka + decode alone).
func (env *benchEnv) inProcess(b *testing.B, group string, st func(dbURL string) rowStore) drainResult {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	var inner rowStore
	dbURL := ""
	if st == nil {
		var drop func()
		dbURL, drop = env.freshDB(b)
		defer drop()
		db, err := store.Open(ctx, store.Config{URL: dbURL, Log: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Ping(ctx); err != nil {
			b.Fatal(err)
		}
		inner = db
	} else {
		inner = st(dbURL)
	}
	ts := &benchTimedStore{rowStore: inner}
	kcfg := kafka.Config{Brokers: env.kafka.Brokers(), Version: sarama.MaxVersion.String(), ClientID: "bench", PublishTimeout: 10 * time.Second}
	w, err := New(Config{
		Group: group, EventsTopic: benchEventsTopic, NotificationsTopic: benchNotificationsTopic, DLQTopic: benchDLQTopic,
		BatchSize: benchBatchSize, BatchAge: benchBatchAge, MaxBackoff: 10 * time.Second, WriteTimeout: 20 * time.Second,
		Rules: audit.DefaultRules(),
	}, kcfg, ts, benchNoDLQ{b}, zap.NewNop(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	want := int64(len(env.events))
	var cpu0, self0 time.Duration
	if dbURL != "" {
		cpu0 = env.pgCPU(b)
	}
	self0 = benchSelfCPU()
	if path := os.Getenv("BENCH_WRITER_CPUPROFILE"); path != "" && dbURL != "" {
		// The writer leg alone (plus kfake serving it), not the fixtures.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatalf("BENCH_WRITER_CPUPROFILE needs no -cpuprofile: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for ts.rows.Load() < want {
		select {
		case err := <-done:
			b.Fatalf("writer stopped early after %d rows: %v", ts.rows.Load(), err)
		case <-tick.C:
		case <-time.After(5 * time.Minute):
			b.Fatalf("writer stored %d of %d rows in 5 minutes", ts.rows.Load(), want)
		}
	}
	res := drainResult{
		benchLeg:  benchLeg{took: time.Since(start), selfCPU: benchSelfCPU() - self0},
		joined:    time.Unix(0, ts.first.Load()).Sub(start),
		writeTime: time.Duration(ts.writeNS.Load()),
		writes:    ts.writes.Load(),
	}
	if dbURL != "" {
		res.dbCPU = env.pgCPU(b) - cpu0
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if dbURL != "" {
		benchCheckStored(b, dbURL, len(env.events))
	}
	return res
}

// ---------------------------------------------------------------------------
// The writer binary.

var (
	benchBinOnce sync.Once
	benchBinPath string
	benchBinErr  error
)

// benchWriterBinary builds cmd/writer once per test process.
func benchWriterBinary(b *testing.B) string {
	benchBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bench-writer-")
		if err != nil {
			benchBinErr = err
			return
		}
		benchBinPath = filepath.Join(dir, "writer")
		cmd := exec.Command("go", "build", "-o", benchBinPath, "./cmd/writer")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			benchBinErr = fmt.Errorf("go build ./cmd/writer: %w\n%s", err, out)
		}
	})
	if benchBinErr != nil {
		b.Fatal(benchBinErr)
	}
	b.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(benchBinPath)) })
	return benchBinPath
}

type binaryResult struct {
	took  time.Duration // process start to the last row stored
	dbCPU time.Duration // PostgreSQL server CPU until then
	cpu   time.Duration // the writer's CPU, whole run
	vmHWM int64         // bytes, /proc/<pid>/status VmHWM, last read before exit
	// maxRSS is getrusage's ru_maxrss of the child. Not the peak figure:
	// Linux carries the RSS high-water mark of the pre-exec address space
	// into it, and Go starts children with vfork semantics (CLONE_VM), so
	// it reports this (big) test process's RSS at exec time when that is
	// larger than the writer's own.
	maxRSS    int64
	goHeapMax float64 // bytes, largest go_memstats_heap_inuse_bytes seen
}

// benchMetric returns the value of the sample line starting with name.
func benchMetric(body, name string) (float64, bool) {
	i := strings.Index(body, "\n"+name+" ")
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(name)+2:]
	if j := strings.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	v, err := strconv.ParseFloat(rest, 64)
	return v, err == nil
}

// binary runs cmd/writer with its defaults (batch 5000 / 100ms, 10
// connections) against a fresh database until every pre-filled record is
// stored, polling its /metrics, then reads its peak RSS and stops it.
func (env *benchEnv) binary(b *testing.B, bin, group string) binaryResult {
	dbURL, drop := env.freshDB(b)
	defer drop()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	var logBuf strings.Builder
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(env.kafka.Brokers(), ","),
		"DATABASE_URL="+dbURL,
		"METRICS_ADDR="+addr,
		"CONSUMER_GROUP="+group,
		"EVENTS_TOPIC="+benchEventsTopic, "NOTIFICATIONS_TOPIC="+benchNotificationsTopic, "DLQ_TOPIC="+benchDLQTopic,
		// The records have no principal header: verifying costs nothing.
		"SOURCE_SIGNING_DISABLED=true",
		"LOG_LEVEL=warn",
	)
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	cpu0 := env.pgCPU(b)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	var hwm atomic.Int64
	go func() {
		// VmHWM until the process is gone, shutdown included.
		for {
			if v := benchVmHWM(cmd.Process.Pid); v > 0 {
				hwm.Store(v)
			} else {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	var res binaryResult
	want := float64(len(env.events))
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if time.Now().After(deadline) {
			b.Fatalf("writer binary did not store %v rows in 5 minutes; log:\n%s", want, logBuf.String())
		}
		select {
		case err := <-exited:
			stopped = true
			b.Fatalf("writer binary exited: %v; log:\n%s", err, logBuf.String())
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		body := new(strings.Builder)
		_, _ = ioCopy(body, resp)
		if v, ok := benchMetric(body.String(), "go_memstats_heap_inuse_bytes"); ok {
			res.goHeapMax = max(res.goHeapMax, v)
		}
		if v, ok := benchMetric(body.String(), `auditstream_writer_rows_written_total{table="audit_events"}`); ok && v >= want {
			res.took = time.Since(start)
			break
		}
	}
	res.dbCPU = env.pgCPU(b) - cpu0
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			b.Fatalf("writer binary: %v; log:\n%s", err, logBuf.String())
		}
	case <-time.After(30 * time.Second):
		b.Fatal("writer binary did not stop within 30s of SIGTERM")
	}
	res.vmHWM = hwm.Load()
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	benchCheckStored(b, dbURL, len(env.events))
	return res
}

func ioCopy(dst *strings.Builder, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		dst.Write(buf[:k])
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}

// benchVmHWM reads the peak resident set size of pid, 0 once it is gone
// (a zombie has no VmHWM line).
func benchVmHWM(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// pgCPU returns the CPU time the whole PostgreSQL server has used so far
// (testenv's Postgres.CPU). Wall time is at the mercy of whatever else
// runs on the machine; server CPU per row is not, or much less.
func (env *benchEnv) pgCPU(b *testing.B) time.Duration {
	d, err := env.pg.CPU()
	if err != nil {
		b.Fatalf("PostgreSQL CPU (set no DATABASE_URL for this benchmark): %v", err)
	}
	return d
}

// ---------------------------------------------------------------------------
// Benchmarks.

// BenchmarkWriterDrain measures, per iteration and in this order: raw pgx
// CopyFrom of the rows into audit_events (5000 per transaction); the writer
// in this process draining the pre-filled topic with a new consumer group
// (what -cpuprofile sees); the cmd/writer binary doing the same, for its
// peak RSS. Each leg starts from an empty, freshly migrated database.
//
// Metrics: rawcopy_rows/s, writer_rows/s (end to end, including the group
// join), writer_steady_rows/s (from the first committed batch), writer/raw
// (the target is >= 0.7), db_busy (share of the writer's wall time
// spent inside store.Write), binary_rows/s, binary_peak_rss_MiB.
func BenchmarkWriterDrain(b *testing.B) {
	env := benchStart(b, true)
	n := len(env.events)
	withBinary := os.Getenv("BENCH_WRITER_BINARY") != "0"
	var bin string
	if withBinary {
		bin = benchWriterBinary(b)
	}
	var raw, wr, steady, busy time.Duration
	var join time.Duration
	var binTook time.Duration
	var rawDB, wrDB, binDB, binCPU, rawSelf, wrSelf time.Duration
	var peak, heapMax float64
	iter := 0
	b.ResetTimer()
	for b.Loop() {
		iter++
		rl := env.rawCopy(b, benchBatchSize)
		rawTook := rl.took
		raw += rawTook
		rawDB += rl.dbCPU
		rawSelf += rl.selfCPU
		r := env.inProcess(b, fmt.Sprintf("bench-writer-%d", iter), nil)
		wr += r.took
		wrDB += r.dbCPU
		wrSelf += r.selfCPU
		join += r.joined
		steady += r.took - r.joined
		busy += r.writeTime
		b.Logf("iteration %d: rawcopy %.0f rows/s; writer %.0f rows/s (first commit after %s, %d writes, db busy %.0f%%)",
			iter, float64(n)/rawTook.Seconds(), float64(n)/r.took.Seconds(),
			r.joined.Round(time.Millisecond), r.writes, 100*r.writeTime.Seconds()/r.took.Seconds())
		if withBinary {
			br := env.binary(b, bin, fmt.Sprintf("bench-binary-%d", iter))
			binTook += br.took
			binDB += br.dbCPU
			binCPU += br.cpu
			peak = max(peak, float64(br.vmHWM))
			heapMax = max(heapMax, br.goHeapMax)
			b.Logf("iteration %d: binary %.0f rows/s, VmHWM %d MiB, ru_maxrss %d MiB, Go heap in use max %.0f MiB",
				iter, float64(n)/br.took.Seconds(), br.vmHWM>>20, br.maxRSS>>20, br.goHeapMax/(1<<20))
		}
	}
	rows := float64(n * iter)
	rawRate := rows / raw.Seconds()
	wrRate := rows / wr.Seconds()
	b.ReportMetric(rawRate, "rawcopy_rows/s")
	b.ReportMetric(wrRate, "writer_rows/s")
	b.ReportMetric(float64(n*iter-benchBatchSize*iter)/steady.Seconds(), "writer_steady_rows/s")
	b.ReportMetric(wrRate/rawRate, "writer/raw")
	b.ReportMetric(busy.Seconds()/wr.Seconds(), "db_busy")
	b.ReportMetric(float64(rawDB.Microseconds())/rows, "rawcopy_db_cpu_us/row")
	b.ReportMetric(float64(wrDB.Microseconds())/rows, "writer_db_cpu_us/row")
	b.ReportMetric(float64(rawSelf.Microseconds())/rows, "rawcopy_go_cpu_us/row")
	b.ReportMetric(float64(wrSelf.Microseconds())/rows, "writer_go_cpu_us/row")
	if withBinary {
		b.ReportMetric(rows/binTook.Seconds(), "binary_rows/s")
		b.ReportMetric(peak/(1<<20), "binary_peak_rss_MiB")
		b.ReportMetric(heapMax/(1<<20), "binary_heap_max_MiB")
		b.ReportMetric(float64(binDB.Microseconds())/rows, "binary_db_cpu_us/row")
		b.ReportMetric(float64(binCPU.Microseconds())/rows, "binary_cpu_us/row")
	}
	fmt.Printf("writer drain: %d rows x %d: raw COPY %.0f rows/s, writer %.0f rows/s (ratio %.2f, target >= 0.70)",
		n, iter, rawRate, wrRate, wrRate/rawRate)
	if withBinary {
		fmt.Printf(", binary %.0f rows/s, binary peak RSS %.0f MiB", rows/binTook.Seconds(), peak/(1<<20))
	}
	fmt.Println()
}

// BenchmarkWriterKafkaOnly drains the pre-filled topic through the writer
// with a row store that stores nothing: the Kafka fetch + decode + batching
// ceiling, to tell whether the database path or the consumer side limits
// BenchmarkWriterDrain.
func BenchmarkWriterKafkaOnly(b *testing.B) {
	env := benchStart(b, true)
	n := len(env.events)
	var took time.Duration
	iter := 0
	for b.Loop() {
		iter++
		r := env.inProcess(b, fmt.Sprintf("bench-kafka-only-%d", iter), func(string) rowStore { return benchNopStore{} })
		took += r.took
	}
	b.ReportMetric(float64(n*iter)/took.Seconds(), "rows/s")
}

type benchNopStore struct{}

func (benchNopStore) Write(_ context.Context, events []audit.Event, ns []audit.Notification) (store.WriteResult, error) {
	return store.WriteResult{Events: len(events), Notifications: len(ns)}, nil
}

// ---------------------------------------------------------------------------
// The SQL path alone: alternatives to the store's staged COPY.

// benchSQLPath writes one batch in its own transaction (or returns an
// error); pool is the leg's pool, fresh for every leg.
type benchSQLPath func(ctx context.Context, pool *pgxpool.Pool, st *store.Store, events []audit.Event) error

// The staged path's temporary table has the columns of audit_events that
// COPY fills, without their constraints and indexes.
var (
	benchStageSQL = `CREATE TEMP TABLE IF NOT EXISTS audit_events_stage ON COMMIT DELETE ROWS AS
	SELECT ` + strings.Join(store.EventColumns(), ", ") + ` FROM audit_events WITH NO DATA`

	benchInsertFromStageSQL = `WITH new_ids AS (
	INSERT INTO audit_event_ids (event_id, event_timestamp)
	SELECT event_id, event_timestamp FROM audit_events_stage
	ON CONFLICT (event_id) DO NOTHING
	RETURNING event_id)
INSERT INTO audit_events (` + strings.Join(store.EventColumns(), ", ") + `)
SELECT s.` + strings.Join(store.EventColumns(), ", s.") + `
FROM audit_events_stage s JOIN new_ids USING (event_id)`
)

// Step timings of the staged path (benchStagedTimed), nanoseconds.
var benchStep struct{ stage, copy, insert, commit atomic.Int64 }

func benchCopyRows(events []audit.Event) pgx.CopyFromSource {
	rows := make([][]any, len(events))
	for i := range events {
		rows[i] = store.EventRow(&events[i])
	}
	return pgx.CopyFromRows(rows)
}

// benchStagedTimed is store.Write's event path, step by step, timed.
func benchStagedTimed(ctx context.Context, pool *pgxpool.Pool, _ *store.Store, events []audit.Event) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	t0 := time.Now()
	if _, err := tx.Exec(ctx, benchStageSQL); err != nil {
		return err
	}
	t1 := time.Now()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events_stage"}, store.EventColumns(), benchCopyRows(events)); err != nil {
		return err
	}
	t2 := time.Now()
	if _, err := tx.Exec(ctx, benchInsertFromStageSQL); err != nil {
		return err
	}
	t3 := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	t4 := time.Now()
	benchStep.stage.Add(int64(t1.Sub(t0)))
	benchStep.copy.Add(int64(t2.Sub(t1)))
	benchStep.insert.Add(int64(t3.Sub(t2)))
	benchStep.commit.Add(int64(t4.Sub(t3)))
	return nil
}

// benchCopyBoth: COPY the ids into audit_event_ids and the rows into
// audit_events, no de-duplication: the floor of the register design.
func benchCopyBoth(ctx context.Context, pool *pgxpool.Pool, _ *store.Store, events []audit.Event) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ids := make([][]any, len(events))
		for i := range events {
			ids[i] = []any{[16]byte(events[i].EventID), events[i].EventTimestamp}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_event_ids"}, []string{"event_id", "event_timestamp"}, pgx.CopyFromRows(ids)); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, store.EventColumns(), benchCopyRows(events))
		return err
	})
}

// benchIDsThenCopy keeps exact de-duplication without staging the rows:
// INSERT the batch's ids (two arrays, one statement) ON CONFLICT DO NOTHING
// RETURNING event_id, then COPY straight into audit_events only the rows
// whose id came back. Same transaction, same semantics as the staged path.
const benchInsertIDsSQL = `INSERT INTO audit_event_ids (event_id, event_timestamp)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id`

func benchIDsThenCopy(ctx context.Context, pool *pgxpool.Pool, _ *store.Store, events []audit.Event) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ids := make([]uuid.UUID, len(events))
		tss := make([]time.Time, len(events))
		for i := range events {
			ids[i], tss[i] = events[i].EventID, events[i].EventTimestamp
		}
		rows, err := tx.Query(ctx, benchInsertIDsSQL, ids, tss)
		if err != nil {
			return err
		}
		fresh := make(map[uuid.UUID]struct{}, len(events))
		var id uuid.UUID
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			fresh[id] = struct{}{}
			return nil
		})
		if err != nil {
			return err
		}
		if len(fresh) == 0 {
			return nil
		}
		keep := events
		if len(fresh) < len(events) {
			keep = make([]audit.Event, 0, len(fresh))
			for _, e := range events {
				if _, ok := fresh[e.EventID]; ok {
					keep = append(keep, e)
				}
			}
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, store.EventColumns(), benchCopyRows(keep))
		return err
	})
}

// benchOptimistic tries benchCopyBoth and, on a unique violation (a
// redelivered batch), falls back to the exact path in a new transaction.
func benchOptimistic(ctx context.Context, pool *pgxpool.Pool, st *store.Store, events []audit.Event) error {
	err := benchCopyBoth(ctx, pool, st, events)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return benchIDsThenCopy(ctx, pool, st, events)
	}
	return err
}

func benchStoreWrite(ctx context.Context, _ *pgxpool.Pool, st *store.Store, events []audit.Event) error {
	_, err := st.Write(ctx, events, nil)
	return err
}

func benchRawEvents(ctx context.Context, pool *pgxpool.Pool, _ *store.Store, events []audit.Event) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, store.EventColumns(), benchCopyRows(events))
		return err
	})
}

// BenchmarkWriteSQLPath writes the rows batch by batch through one SQL path
// into a fresh database, no Kafka: rows/s of the database side alone.
// Sub-benchmarks:
//   - raw_copy: COPY into audit_events (the reference);
//   - store_write: store.Write as the writer calls it (staged);
//   - store_write_chain: the same with the hash chain on (SPEC 9.1), so
//     that its cost shows as db_cpu_us/row and go_cpu_us/row;
//   - staged_steps: the same SQL, with the time of each step reported;
//   - copy_ids_and_events: two COPYs, no de-duplication (the floor);
//   - ids_then_copy: INSERT ids RETURNING, then COPY the new rows (exact);
//   - optimistic: two COPYs, exact path only on 23505;
//   - store_write_conc2 / ids_then_copy_conc2: two batches in flight;
//   - store_write_batch20000: one batch of 20,000 per transaction;
//   - *_redeliver: every batch written twice (the second time all
//     duplicates), the cost of a replay after a crash.
func BenchmarkWriteSQLPath(b *testing.B) {
	env := benchStart(b, false)
	type variant struct {
		name      string
		path      benchSQLPath
		batch     int
		conc      int
		redeliver bool
		chain     bool
	}
	variants := []variant{
		{"raw_copy", benchRawEvents, benchBatchSize, 1, false, false},
		{"store_write", benchStoreWrite, benchBatchSize, 1, false, false},
		{"store_write_chain", benchStoreWrite, benchBatchSize, 1, false, true},
		{"staged_steps", benchStagedTimed, benchBatchSize, 1, false, false},
		{"copy_ids_and_events", benchCopyBoth, benchBatchSize, 1, false, false},
		{"ids_then_copy", benchIDsThenCopy, benchBatchSize, 1, false, false},
		{"optimistic", benchOptimistic, benchBatchSize, 1, false, false},
		{"store_write_conc2", benchStoreWrite, benchBatchSize, 2, false, false},
		{"ids_then_copy_conc2", benchIDsThenCopy, benchBatchSize, 2, false, false},
		{"store_write_batch20000", benchStoreWrite, 20000, 1, false, false},
		{"store_write_redeliver", benchStoreWrite, benchBatchSize, 1, true, false},
		{"ids_then_copy_redeliver", benchIDsThenCopy, benchBatchSize, 1, true, false},
		{"optimistic_redeliver", benchOptimistic, benchBatchSize, 1, true, false},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			n := len(env.events)
			var took, dbCPU, selfCPU time.Duration
			var walBytes int64
			iter := 0
			benchStep.stage.Store(0)
			benchStep.copy.Store(0)
			benchStep.insert.Store(0)
			benchStep.commit.Store(0)
			for b.Loop() {
				iter++
				leg := env.sqlLeg(b, v.path, v.batch, v.conc, v.redeliver, v.chain)
				took += leg.took
				dbCPU += leg.dbCPU
				selfCPU += leg.selfCPU
				walBytes += leg.walBytes
			}
			rows := float64(n * iter)
			b.ReportMetric(float64(walBytes)/rows, "wal_bytes/row")
			b.ReportMetric(rows/took.Seconds(), "rows/s")
			b.ReportMetric(float64(dbCPU.Microseconds())/rows, "db_cpu_us/row")
			b.ReportMetric(float64(selfCPU.Microseconds())/rows, "go_cpu_us/row")
			if s := benchStep.copy.Load(); s > 0 {
				total := float64(benchStep.stage.Load() + s + benchStep.insert.Load() + benchStep.commit.Load())
				b.ReportMetric(float64(benchStep.stage.Load())/total, "create_stage_share")
				b.ReportMetric(float64(s)/total, "copy_stage_share")
				b.ReportMetric(float64(benchStep.insert.Load())/total, "insert_select_share")
				b.ReportMetric(float64(benchStep.commit.Load())/total, "commit_share")
			}
		})
	}
}

// sqlLeg writes every event through path in batches, conc batches at a time.
func (env *benchEnv) sqlLeg(b *testing.B, path benchSQLPath, batch, conc int, redeliver, chain bool) benchLeg {
	dbURL, drop := env.freshDB(b)
	defer drop()
	ctx := b.Context()
	pool := benchPool(b, dbURL, int32(conc))
	defer pool.Close()
	cfg := store.Config{URL: dbURL, MaxConns: int32(conc), Log: zap.NewNop()}
	if chain {
		keys, err := integrity.LoadKeys(testenv.NewIntegrityKeys(b).KeysFile)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Chain = keys
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := pool.Ping(ctx); err != nil {
		b.Fatal(err)
	}
	if err := st.Ping(ctx); err != nil {
		b.Fatal(err)
	}
	var batches [][]audit.Event
	for lo := 0; lo < len(env.events); lo += batch {
		batches = append(batches, env.events[lo:min(lo+batch, len(env.events))])
	}
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var failed atomic.Value
	wal0 := benchWAL(b, pool)
	cpu0, self0 := env.pgCPU(b), benchSelfCPU()
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(batches)) {
					return
				}
				if err := path(ctx, pool, st, batches[i]); err != nil {
					failed.Store(err)
					return
				}
				if redeliver {
					if err := path(ctx, pool, st, batches[i]); err != nil {
						failed.Store(fmt.Errorf("redelivery: %w", err))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	leg := benchLeg{took: time.Since(start), dbCPU: env.pgCPU(b) - cpu0, selfCPU: benchSelfCPU() - self0}
	leg.walBytes = benchWAL(b, pool) - wal0
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	benchCheckStored(b, dbURL, len(env.events))
	return leg
}
