package main

import (
	"context"
	"fmt"
	"net/http"
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
Kafka -> PostgreSQL (issue item 3): a 12-partition topic is pre-filled with
--rows events as ingest-api publishes them (canonical JSON, UUIDv7 event_id,
key correlation_id, its headers, lz4, acks=all). Then, each into a fresh,
migrated database (the real audit_events with every index):

  rawcopy  pgx CopyFrom of the same rows and columns as store.Write, 5,000
           rows per transaction, one connection: the ceiling
  writer   the real writer binary (go build, a process, its defaults), from
           process start until its rows_written_total reaches --rows

Target: writer steady rows/s >= 0.7 x rawcopy rows/s (same run). Steady is
from the first rows the writer reports written (so start-up and the group
join are not counted); the end-to-end rate is reported as well.`

type writerCmd struct {
	Rows int `default:"100000" help:"Events in the pre-filled topic."`
}

func (writerCmd) Help() string { return writerSynopsis }

func (c *writerCmd) Run(r *run) error {
	return r.record(writerStage(r.ctx, c.Rows, r.logf, r.env.Params))
}

func writerStage(ctx context.Context, rows int, logf func(string, ...any), params map[string]string) ([]Result, error) {
	if rows < 1 {
		return nil, fmt.Errorf("writer: need --rows >= 1")
	}
	params["writer_rows"] = strconv.Itoa(rows)
	if _, err := binaries(logf); err != nil {
		return nil, err
	}
	st, err := startStack(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	params["stack"] = st.describe()

	events := eventgen.Events(rows, eventgen.Options{Seed: 2, IDs: true})
	start := time.Now()
	avg, err := prefill(ctx, st, events)
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
	logf("writer: rawcopy of %s rows ...", thousands(int64(len(events))))
	rawTook, err := rawCopy(ctx, rawURL, events, 5000)
	dropRaw()
	if err != nil {
		return nil, err
	}
	rawRate := float64(len(events)) / rawTook.Seconds()
	logf("writer: rawcopy %.0f rows/s (%s)", rawRate, rawTook.Round(time.Millisecond))

	// The writer binary.
	wURL, dropW, err := st.freshDB(ctx, "writer")
	if err != nil {
		return nil, err
	}
	defer dropW()
	logf("writer: writer binary draining %s rows ...", thousands(int64(len(events))))
	procStart := time.Now()
	wp, metricsURL, err := st.startWriter(ctx, wURL, "auditbench-writer-"+randomID(), logf)
	if err != nil {
		return nil, err
	}
	defer wp.stop()
	c := &http.Client{Timeout: 2 * time.Second}
	var first time.Time
	var firstRows float64
	deadline := time.Now().Add(30 * time.Minute)
	for {
		if err := wp.done(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("writer did not drain %d rows in 30 minutes", len(events))
		}
		v, err := metricValue(c, metricsURL, writerRowsMetric)
		now := time.Now()
		if err == nil && v > 0 && first.IsZero() {
			first, firstRows = now, v
		}
		if err == nil && v >= float64(len(events)) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	done := time.Now()
	if err := wp.stop(); err != nil {
		return nil, err
	}
	if err := checkCount(ctx, wURL, len(events)); err != nil {
		return nil, err
	}
	e2e := float64(len(events)) / done.Sub(procStart).Seconds()
	steady := (float64(len(events)) - firstRows) / max(done.Sub(first).Seconds(), 1e-3)
	if firstRows >= float64(len(events)) {
		steady = e2e // drained between two polls
	}
	logf("writer: writer %.0f rows/s steady, %.0f rows/s from process start", steady, e2e)
	_, wcpu := wp.usage()
	results := []Result{
		{Name: "writer.rawcopy.rows_per_s", Value: rawRate, Unit: "rows/s",
			Notes: fmt.Sprintf("BASELINE: pgx CopyFrom of the same %s rows into a fresh audit_events (all indexes), 5,000/tx, 1 conn", thousands(int64(len(events))))},
		{Name: "writer.writer.rows_per_s", Value: steady, Unit: "rows/s",
			Notes: "real writer binary, from its first rows written to the last (polls /metrics every 50 ms); vs writer.rawcopy.rows_per_s"},
		{Name: "writer.writer.rows_per_s_from_start", Value: e2e, Unit: "rows/s",
			Notes: fmt.Sprintf("same, from process start (start-up + group join %s included)", first.Sub(procStart).Round(time.Millisecond))},
		{Name: "writer.ratio.writer_vs_rawcopy", Value: steady / rawRate, Unit: "x", Target: AtLeast(0.7),
			Notes: "writer.writer.rows_per_s / writer.rawcopy.rows_per_s"},
		{Name: "writer.writer.cpu_per_row", Value: float64(wcpu.Microseconds()) / float64(len(events)), Unit: "us/row",
			Notes: "writer process CPU (whole life) / rows"},
	}
	results = append(results, procResults("writer", wp, fmt.Sprintf("draining %s pre-filled rows", thousands(int64(len(events)))))...)
	return results, nil
}

// prefill publishes events as ingest-api does and returns the average
// record size.
func prefill(ctx context.Context, st *stack, events []audit.Event) (int, error) {
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
		cl.Produce(ctx, &kgo.Record{Topic: st.topics.events, Key: []byte(e.CorrelationID), Value: v, Headers: headers},
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

// rawCopy stores events with CopyFrom, batch rows per transaction, and
// returns the time it took (row building included, as the writer's is).
func rawCopy(ctx context.Context, dbURL string, events []audit.Event, batch int) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start := time.Now()
	for lo := 0; lo < len(events); lo += batch {
		chunk := events[lo:min(lo+batch, len(events))]
		rows := make([][]any, len(chunk))
		for i := range chunk {
			rows[i] = store.EventRow(&chunk[i])
		}
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, store.EventColumns(), pgx.CopyFromRows(rows))
			return err
		}); err != nil {
			return 0, fmt.Errorf("raw copy: %w", err)
		}
	}
	took := time.Since(start)
	return took, checkCount(ctx, dbURL, len(events))
}

// checkCount fails unless audit_events holds exactly n rows.
func checkCount(ctx context.Context, dbURL string, n int) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var got int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&got); err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("audit_events holds %d rows, want %d", got, n)
	}
	return nil
}
