package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/testenv"
)

// dlqHeaders are the headers SPEC 6.1 puts on a dead letter.
var dlqHeaders = []string{
	dlq.HeaderOriginalTopic, dlq.HeaderOriginalPartition, dlq.HeaderOriginalOffset, dlq.HeaderErrorClass,
	dlq.HeaderError, dlq.HeaderFirstFailedAt, dlq.HeaderFailedAt, dlq.HeaderAttempts,
	dlq.HeaderOriginalTopicID, dlq.HeaderOriginalTimestamp,
}

// nonDLQ returns the headers that are not dlq-*, in order.
func nonDLQ(hs []kgo.RecordHeader) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, "dlq-") {
			out = append(out, h)
		}
	}
	return out
}

// requireEnvelope checks that r carries orig's key, value and other headers
// byte for byte and exactly one set of dlq-* headers naming orig's
// coordinates, with attempts as given.
func requireEnvelope(t *testing.T, orig, r *kgo.Record, class string, wantAttempts int) {
	t.Helper()
	require.Equal(t, orig.Key, r.Key, "key")
	require.Equal(t, orig.Value, r.Value, "value")
	require.Equal(t, orig.Headers, nonDLQ(r.Headers), "non-dlq headers, in order")
	n := 0
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, "dlq-") {
			n++
		}
	}
	require.Equal(t, len(dlqHeaders), n, "exactly one set of dlq-* headers: %v", r.Headers)
	for _, k := range dlqHeaders {
		_, c := header(r, k)
		require.Equal(t, 1, c, "one %s header", k)
	}
	topic, _ := header(r, dlq.HeaderOriginalTopic)
	partition, _ := header(r, dlq.HeaderOriginalPartition)
	offset, _ := header(r, dlq.HeaderOriginalOffset)
	require.Equal(t, []string{orig.Topic, strconv.Itoa(int(orig.Partition)), strconv.FormatInt(orig.Offset, 10)},
		[]string{topic, partition, offset}, "dlq-original-* name the first production")
	ts, _ := header(r, dlq.HeaderOriginalTimestamp)
	require.Equal(t, strconv.FormatInt(orig.Timestamp.UnixMilli(), 10), ts, "dlq-original-timestamp is the first production's")
	cls, _ := header(r, dlq.HeaderErrorClass)
	require.Equal(t, class, cls)
	require.Equal(t, wantAttempts, attempts(t, r))
}

// TestPoisonCyclesUntilParked follows a poison record through the writer,
// the DLQ and the replayer until it is parked (SPEC 6.1, 6.2).
func TestPoisonCyclesUntilParked(t *testing.T) {
	e := newEnv(t, 2)
	runWriter(t, e)
	const maxAttempts = 3

	poison := &kgo.Record{
		Topic: e.events,
		Key:   []byte("poison-key"),
		// Not JSON, not even UTF-8.
		Value: []byte("{\"version\":\"1.0\",\xff\x00 not json"),
		Headers: []kgo.RecordHeader{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "x-trace", Value: []byte{0, 1, 0xfe, 0xff}},
			{Key: "x-dup", Value: []byte("one")},
			{Key: "x-dup", Value: []byte("two")},
		},
	}
	valid := &kgo.Record{Topic: e.events, Key: []byte("valid"), Value: eventValue(e.tag, "valid", 1)}
	produce(t, poison, valid)

	var firstFailedAt string
	for round := 0; round <= maxAttempts; round++ {
		testenv.Await(t, 30*time.Second, fmt.Sprintf("dead letter of round %d", round), func() (bool, string) {
			n := total(ends(t, e.dlq))
			return n == int64(round+1), fmt.Sprintf("%d records in the DLQ", n)
		})
		w := waiting(t, e.group, e.dlq)
		require.Len(t, w, 1, "only the newest copy waits")
		requireEnvelope(t, poison, w[0], "poison", round)
		ff, _ := header(w[0], dlq.HeaderFirstFailedAt)
		if round == 0 {
			firstFailedAt = ff
		}
		require.Equal(t, firstFailedAt, ff, "dlq-first-failed-at is kept across rounds")
		reason, _ := header(w[0], dlq.HeaderError)
		require.Contains(t, reason, "invalid audit event")

		out := e.replay(t, "--max-attempts", strconv.Itoa(maxAttempts))
		if round < maxAttempts {
			require.Contains(t, out, "1 replayed to their original topic, 0 parked", out)
		} else {
			require.Contains(t, out, "0 replayed to their original topic, 1 parked", out)
		}
	}

	// The events topic holds the original and one replay per round.
	evs := readAll(t, e.events)
	var replays []*kgo.Record
	for _, r := range evs {
		if bytes.Equal(r.Key, poison.Key) && (r.Partition != poison.Partition || r.Offset != poison.Offset) {
			replays = append(replays, r)
		}
	}
	require.Len(t, replays, maxAttempts)
	for i, r := range replays {
		requireEnvelope(t, poison, r, "poison", i+1)
	}
	// Parked: exactly one record, the original with one envelope.
	parked := readAll(t, e.parked)
	require.Len(t, parked, 1)
	requireEnvelope(t, poison, parked[0], "poison", maxAttempts)
	ff, _ := header(parked[0], dlq.HeaderFirstFailedAt)
	require.Equal(t, firstFailedAt, ff)
	require.Empty(t, waiting(t, e.group, e.dlq), "the DLQ is empty")

	// Every DLQ copy carries one envelope, attempts 0..max.
	for i, r := range readAll(t, e.dlq) {
		requireEnvelope(t, poison, r, "poison", i)
	}
	rows, ids := stored(t, e, "")
	require.Equal(t, [2]int{1, 1}, [2]int{rows, ids}, "the valid record of the batch is stored once")
}

// TestFailedStoredAfterFix: a record the database refuses for a reason that
// can clear is dead-lettered as failed, and stored exactly once by a replay
// after the cause is fixed, even when the replay delivers it twice.
func TestFailedStoredAfterFix(t *testing.T) {
	e := newEnv(t, 1)
	blocked := e.tag + "-blocked"
	constraint := "dlq_test_block_" + strconv.FormatInt(envSeq.Load(), 10)
	db := shared.db.Pool()
	_, err := db.Exec(t.Context(), fmt.Sprintf(`ALTER TABLE audit_events ADD CONSTRAINT %s CHECK (correlation_id <> '%s')`, constraint, blocked))
	require.NoError(t, err)
	fixed := false
	fix := func() {
		_, err := db.Exec(t.Context(), `ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS `+constraint)
		require.NoError(t, err)
		fixed = true
	}
	t.Cleanup(func() {
		if !fixed {
			fix()
		}
	})
	runWriter(t, e)

	rec := &kgo.Record{Topic: e.events, Key: []byte(blocked), Value: eventValue(e.tag, blocked, 1),
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}}
	produce(t, rec, &kgo.Record{Topic: e.events, Key: []byte("ok"), Value: eventValue(e.tag, "ok", 2)})

	awaitDLQ := func(n int64) {
		testenv.Await(t, 30*time.Second, "the dead letter", func() (bool, string) {
			got := total(ends(t, e.dlq))
			return got == n, fmt.Sprintf("%d records in the DLQ", got)
		})
	}
	awaitDLQ(1)
	l := e.list(t)
	require.Len(t, l, 1)
	require.Equal(t, "failed", l[0].ErrorClass)
	require.Contains(t, l[0].Error, "SQLSTATE 23514")
	require.Equal(t, e.events, l[0].OriginalTopic)

	// Replayed before the fix, it fails again: still failed, one more attempt.
	e.replay(t)
	awaitDLQ(2)
	w := waiting(t, e.group, e.dlq)
	require.Len(t, w, 1)
	requireEnvelope(t, rec, w[0], "failed", 1)

	fix()
	require.Contains(t, e.replay(t, "--error-class", "failed"), "1 replayed")
	testenv.Await(t, 30*time.Second, "the record stored", func() (bool, string) {
		rows, _ := stored(t, e, "correlation_id = $2", blocked)
		return rows == 1, fmt.Sprintf("%d rows", rows)
	})

	// At-least-once: the same dead letter delivered again (a replayer
	// killed between publishing and committing) is absorbed by the writer.
	again := &kgo.Record{Topic: e.dlq, Key: w[0].Key, Value: w[0].Value, Headers: w[0].Headers}
	produce(t, again)
	require.Contains(t, e.replay(t), "1 replayed")
	writerGroup := e.tag + ".writer"
	testenv.Await(t, 30*time.Second, "the writer to commit the duplicate", func() (bool, string) {
		c, end := committed(t, writerGroup, e.events), ends(t, e.events)
		return total(c) == total(end), fmt.Sprintf("committed %v of %v", c, end)
	})
	rows, ids := stored(t, e, "correlation_id = $2", blocked)
	require.Equal(t, [2]int{1, 1}, [2]int{rows, ids}, "stored exactly once")
	require.Equal(t, int64(3), total(ends(t, e.dlq)), "nothing new was dead-lettered")
	rows, _ = stored(t, e, "")
	require.Equal(t, 2, rows)
}

// seeded are five dead letters of various classes, origins, ages and keys.
type seeded struct {
	e    env
	recs map[string]*kgo.Record // by id (the value)
}

func seed(t *testing.T, e env, topic string, attempts int) seeded {
	t.Helper()
	now := time.Now().UTC()
	spec := []struct {
		id, class, origin, key string
		age                    time.Duration
	}{
		{"A", "poison", e.events, "k-a", 2 * time.Hour},
		{"B", "failed", e.events, "k-b", 10 * time.Minute},
		{"C", "failed", e.notifications, "k-c", time.Minute},
		{"D", "poison", e.notifications, "k-d", 30 * time.Hour},
		{"E", "poison", e.events, "k-a", 5 * time.Second},
	}
	s := seeded{e: e, recs: map[string]*kgo.Record{}}
	var recs []*kgo.Record
	for i, sp := range spec {
		l := dlq.Letter{
			OriginalTopic: sp.origin, OriginalPartition: int32(i % 3), OriginalOffset: int64(100 + i),
			Class: errclass.Class(sp.class), Error: "reason " + sp.id,
			FirstFailedAt: now.Add(-sp.age - time.Hour), FailedAt: now.Add(-sp.age), Attempts: attempts,
		}
		r := &kgo.Record{Topic: topic, Key: []byte(sp.key), Value: []byte(sp.id),
			Headers: letterHeaders(l, kgo.RecordHeader{Key: "content-type", Value: []byte("application/json")})}
		recs = append(recs, r)
		s.recs[sp.id] = r
	}
	produce(t, recs...)
	return s
}

func ids[T any](recs []T, id func(T) string) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, id(r))
	}
	sort.Strings(out)
	return out
}

func jsonID(r recordJSON) string { return r.ValuePreview }
func kgoID(r *kgo.Record) string { return string(r.Value) }

// filterCases are the filters of SPEC 6.2 and what each selects from seed.
func filterCases(e env) []struct {
	name  string
	args  []string
	want  []string // nil: only the count is fixed
	count int
} {
	return []struct {
		name  string
		args  []string
		want  []string
		count int
	}{
		{"all", nil, []string{"A", "B", "C", "D", "E"}, 5},
		{"class poison", []string{"--error-class", "poison"}, []string{"A", "D", "E"}, 3},
		{"class failed", []string{"--error-class", "failed"}, []string{"B", "C"}, 2},
		{"original topic", []string{"--original-topic", e.notifications}, []string{"C", "D"}, 2},
		{"older than", []string{"--older-than", "1h"}, []string{"A", "D"}, 2},
		{"newer than", []string{"--newer-than", "15m"}, []string{"B", "C", "E"}, 3},
		{"key", []string{"--key", "k-a"}, []string{"A", "E"}, 2},
		{"combined", []string{"--error-class", "poison", "--original-topic", e.events}, []string{"A", "E"}, 2},
		{"nothing", []string{"--key", "no-such-key"}, []string{}, 0},
		{"limit", []string{"--limit", "2"}, nil, 2},
		{"limit with filter", []string{"--error-class", "poison", "--limit", "1"}, nil, 1},
	}
}

// TestReadOnlyCommandsMoveNothing: list, inspect and replay --dry-run
// select what the filters name, and neither move records nor commit.
func TestReadOnlyCommandsMoveNothing(t *testing.T) {
	e := newEnv(t, 2)
	s := seed(t, e, e.dlq, 1)
	before := ends(t, e.dlq)
	unchanged := func(t *testing.T) {
		t.Helper()
		require.Equal(t, before, ends(t, e.dlq), "nothing appended to the DLQ")
		require.Empty(t, committed(t, e.group, e.dlq), "nothing committed")
		for _, topic := range []string{e.events, e.notifications, e.parked} {
			require.Zero(t, total(ends(t, topic)), "nothing published to %s", topic)
		}
	}
	for _, c := range filterCases(e) {
		t.Run(c.name, func(t *testing.T) {
			got := e.list(t, c.args...)
			require.Len(t, got, c.count)
			if c.want != nil {
				require.Equal(t, c.want, ids(got, jsonID))
			}
			for _, r := range got {
				want := s.recs[r.ValuePreview]
				require.Equal(t, string(want.Key), r.Key)
				require.Equal(t, 1, r.Attempts)
				require.Equal(t, e.dlq, r.Topic)
			}

			var out, progress bytes.Buffer
			cfg := e.cfg(t, append([]string{"replay", "--dry-run", "--json"}, c.args...)...)
			require.NoError(t, runReplay(t.Context(), cfg, zap.NewNop(), &out, &progress))
			var decided []recordJSON
			for line := range strings.Lines(out.String()) {
				if strings.HasPrefix(line, "{") {
					var r recordJSON
					require.NoError(t, jsonUnmarshal(line, &r))
					require.Equal(t, "replay", r.Action)
					require.Equal(t, r.OriginalTopic, r.To)
					decided = append(decided, r)
				}
			}
			require.Equal(t, ids(got, jsonID), ids(decided, jsonID), "dry run decides what list shows")
			require.Contains(t, out.String(), fmt.Sprintf("would move (dry run: nothing was moved or committed) from %s: %d replayed", e.dlq, c.count))
			unchanged(t)
		})
	}

	// Plain table output names every record too.
	var table bytes.Buffer
	require.NoError(t, runList(t.Context(), e.cfg(t, "list"), &table))
	require.Contains(t, table.String(), "5 record(s) waiting in "+e.dlq)
	require.Contains(t, table.String(), "reason A")

	// inspect shows one record in full, and only that one.
	r := s.recs["C"]
	var text bytes.Buffer
	require.NoError(t, runInspect(t.Context(), e.cfg(t, "inspect", "-p", strconv.Itoa(int(r.Partition)), "-o", strconv.FormatInt(r.Offset, 10)), &text))
	require.Contains(t, text.String(), "class        failed")
	require.Contains(t, text.String(), "origin       "+e.notifications+"/2@102")
	require.Contains(t, text.String(), "content-type: application/json")
	var js bytes.Buffer
	require.NoError(t, runInspect(t.Context(), e.cfg(t, "inspect", "--json", "-p", strconv.Itoa(int(r.Partition)), "-o", strconv.FormatInt(r.Offset, 10)), &js))
	var full struct {
		recordJSON
		Headers map[string]string `json:"headers"`
		Value   string            `json:"value"`
	}
	require.NoError(t, jsonUnmarshal(js.String(), &full))
	require.Equal(t, "C", full.Value)
	require.Equal(t, "1", full.Headers[dlq.HeaderAttempts])
	// An offset past the end is "not found", at once.
	err := runInspect(t.Context(), e.cfg(t, "inspect", "-p", "0", "-o", strconv.FormatInt(before[0], 10)), io.Discard)
	require.ErrorIs(t, err, kafka.ErrNotFound)
	unchanged(t)
}

// TestReplayFilters: replay moves exactly what each filter selects to the
// original topic; the rest stays in the DLQ, unchanged.
func TestReplayFilters(t *testing.T) {
	probe := newEnv(t, 2)
	for _, c := range filterCases(probe) {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 2)
			s := seed(t, e, e.dlq, 1)
			// With a limit, which records come first is the broker's
			// order: list tells, and replay must move the same ones.
			args := slices.Clone(c.args)
			for i := range args {
				switch args[i] {
				case probe.events:
					args[i] = e.events
				case probe.notifications:
					args[i] = e.notifications
				}
			}
			want := []string{}
			for _, r := range e.list(t, args...) {
				want = append(want, r.ValuePreview)
			}
			sort.Strings(want)
			require.Len(t, want, c.count)
			if c.want != nil {
				require.Equal(t, c.want, want)
			}
			out := e.replay(t, args...)
			require.Contains(t, out, fmt.Sprintf("moved from %s: %d replayed to their original topic, 0 parked", e.dlq, c.count))

			moved := append(readAll(t, e.events), readAll(t, e.notifications)...)
			require.Equal(t, want, ids(moved, kgoID), "moved exactly the selected records")
			for _, r := range moved {
				orig := s.recs[string(r.Value)]
				origin, _ := header(orig, dlq.HeaderOriginalTopic)
				require.Equal(t, origin, r.Topic, "back to its original topic")
				require.Equal(t, 2, attempts(t, r), "one more attempt")
				require.Equal(t, orig.Key, r.Key)
				require.Equal(t, nonDLQ(orig.Headers), nonDLQ(r.Headers))
				for _, k := range []string{dlq.HeaderOriginalTopic, dlq.HeaderOriginalPartition, dlq.HeaderOriginalOffset, dlq.HeaderFirstFailedAt, dlq.HeaderFailedAt, dlq.HeaderErrorClass, dlq.HeaderError} {
					a, _ := header(orig, k)
					b, n := header(r, k)
					require.Equal(t, 1, n)
					require.Equal(t, a, b, k)
				}
			}
			left := waiting(t, e.group, e.dlq)
			wantLeft := []string{}
			for id := range s.recs {
				if !slices.Contains(want, id) {
					wantLeft = append(wantLeft, id)
				}
			}
			sort.Strings(wantLeft)
			require.Equal(t, wantLeft, ids(left, kgoID), "the rest stays in the DLQ")
			for _, r := range left {
				orig := s.recs[string(r.Value)]
				require.Equal(t, orig.Key, r.Key)
				require.Equal(t, orig.Headers, r.Headers, "kept records are unchanged")
			}
			require.Zero(t, total(ends(t, e.parked)))
			// A second pass with the same filters finds nothing left
			// (limit aside).
			if c.want != nil {
				require.Contains(t, e.replay(t, args...), "0 replayed")
			}
		})
	}
}

// TestReplayFromParked returns parked records to their original topic,
// where the writer stores them.
func TestReplayFromParked(t *testing.T) {
	e := newEnv(t, 1)
	runWriter(t, e)
	now := time.Now().UTC()
	mk := func(id string, class errclass.Class, value []byte) *kgo.Record {
		l := dlq.Letter{OriginalTopic: e.events, OriginalPartition: 0, OriginalOffset: int64(len(id) * 1000),
			Class: class, Error: "x", FirstFailedAt: now.Add(-time.Hour), FailedAt: now, Attempts: 5}
		return &kgo.Record{Topic: e.parked, Key: []byte(id), Value: value, Headers: letterHeaders(l)}
	}
	fixedRec := mk("fixed", errclass.Failed, eventValue(e.tag, "fixed", 1))
	still := mk("poison", errclass.Poison, []byte("not json"))
	produce(t, fixedRec, still)

	require.Len(t, e.list(t, "--parked"), 2)
	out := e.replay(t, "--from-parked", "--error-class", "failed")
	require.Contains(t, out, fmt.Sprintf("moved from %s: 1 replayed to their original topic, 0 parked", e.parked))

	evs := readAll(t, e.events)
	require.Len(t, evs, 1)
	require.Equal(t, fixedRec.Value, evs[0].Value)
	require.Equal(t, 6, attempts(t, evs[0]))
	testenv.Await(t, 30*time.Second, "the returned record stored", func() (bool, string) {
		rows, _ := stored(t, e, "")
		return rows == 1, fmt.Sprintf("%d rows", rows)
	})
	left := e.list(t, "--parked")
	require.Len(t, left, 1)
	require.Equal(t, "not json", left[0].ValuePreview)
	require.Empty(t, e.list(t), "nothing went to the DLQ")
}

// TestCrashMidPassLosesNothing kills the replayer binary with SIGKILL at
// random points of a pass over 20,000 dead letters, restarts it, and checks
// that every record was replayed at least once or is still in the DLQ, and
// that the writer stored each exactly once.
func TestCrashMidPassLosesNothing(t *testing.T) {
	const n = 20000
	e := newEnv(t, 4)
	runWriter(t, e)
	now := time.Now().UTC()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		l := dlq.Letter{OriginalTopic: e.events, OriginalPartition: int32(i % 3), OriginalOffset: int64(i),
			Class: errclass.Failed, Error: "no partition", FirstFailedAt: now, FailedAt: now}
		key := fmt.Sprintf("c-%d", i%97)
		recs[i] = &kgo.Record{Topic: e.dlq, Key: []byte(key), Value: eventValue(e.tag, key, i), Headers: letterHeaders(l)}
	}
	produce(t, recs...)

	environ := []string{"KAFKA_BROKERS=" + strings.Join(shared.kafka.Brokers(), ","),
		"EVENTS_TOPIC=" + e.events, "NOTIFICATIONS_TOPIC=" + e.notifications, "DLQ_TOPIC=" + e.dlq,
		"PARKED_TOPIC=" + e.parked, "REPLAYER_GROUP=" + e.group, "LOG_LEVEL=warn"}
	midPass := 0
	for kill := 0; kill < 4; kill++ {
		base := total(committed(t, e.group, e.dlq))
		published := total(ends(t, e.events))
		// Kill either right after a publish (before its commit) or after
		// some commits.
		threshold := int64(1 + rand.IntN(4000))
		p := start(t, environ, "replay")
		for p.running() {
			if total(ends(t, e.events))-published >= threshold || total(committed(t, e.group, e.dlq))-base >= threshold {
				break
			}
		}
		if !p.running() {
			require.Equal(t, 0, p.wait(t, time.Second), p.out.Tail(2000))
			break
		}
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		p.wait(t, 10*time.Second)
		if c := total(committed(t, e.group, e.dlq)); c < n {
			midPass++
			t.Logf("kill %d: SIGKILL with %d of %d committed, %d published", kill, c, n, total(ends(t, e.events)))
		}
	}
	require.Positive(t, midPass, "at least one kill landed mid-pass")
	code, out := execBin(t, environ, 60*time.Second, "replay")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "not selected")

	// Every dead letter was replayed at least once, or still waits.
	seen := make(map[string]int, n)
	for _, r := range append(readAll(t, e.events), waiting(t, e.group, e.dlq)...) {
		off, _ := header(r, dlq.HeaderOriginalOffset)
		seen[off]++
	}
	dups := 0
	for i := range n {
		c := seen[strconv.Itoa(i)]
		require.Positive(t, c, "record with origin offset %d lost", i)
		dups += c - 1
	}
	t.Logf("%d kills mid-pass; %d records replayed more than once", midPass, dups)
	testenv.Await(t, 60*time.Second, "the writer to store every record", func() (bool, string) {
		rows, ids := stored(t, e, "")
		return rows == n && ids == n, fmt.Sprintf("%d rows, %d distinct ids", rows, ids)
	})
	require.Zero(t, total(ends(t, e.dlq))-n, "nothing was dead-lettered again")
}

// TestDaemonTickMovesWhatWasThere: a tick moves the records in the DLQ
// when it started; records added during or after it wait for the next.
func TestDaemonTickMovesWhatWasThere(t *testing.T) {
	e := newEnv(t, 3)
	cfg := e.cfg(t, "run", "--interval", "200ms", "--metrics-addr", "127.0.0.1:0")
	reg := prometheus.NewRegistry()
	producer, err := newProducer(cfg, zap.NewNop(), reg)
	require.NoError(t, err)
	s, err := connect(cfg, producer, cfg.Kafka.DLQTopic, zap.NewNop())
	require.NoError(t, err)
	defer s.close()
	m := newDaemonMetrics(reg)

	now := time.Now().UTC()
	mk := func(id string) *kgo.Record {
		l := dlq.Letter{OriginalTopic: e.events, OriginalPartition: 0, OriginalOffset: 1, Class: errclass.Failed,
			Error: "x", FirstFailedAt: now, FailedAt: now}
		return &kgo.Record{Topic: e.dlq, Key: []byte(id), Value: []byte(id), Headers: letterHeaders(l)}
	}
	var first []*kgo.Record
	for i := range 3000 {
		first = append(first, mk(fmt.Sprintf("first-%d", i)))
	}
	produce(t, first...)

	// Once the tick has published its first batch it has certainly
	// started: records produced from then on were not there at its start.
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		later []string
	)
	wg.Go(func() {
		for {
			if n, err := endsTotal(t.Context(), e.events); err == nil && n > 0 {
				break
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("later-%d", i)
			if shared.kcl.ProduceSync(t.Context(), mk(id)).FirstErr() == nil {
				later = append(later, id)
			}
		}
	})
	tick(t.Context(), cfg, s, m, zap.NewNop())
	close(stop)
	wg.Wait()
	during := len(later)
	for i := range 5 {
		id := fmt.Sprintf("after-%d", i)
		produce(t, mk(id))
		later = append(later, id)
	}
	t.Logf("%d records added during the tick, 5 after", during)

	moved := readAll(t, e.events)
	require.Len(t, moved, len(first), "the tick moved the records there at its start")
	require.Equal(t, ids(first, kgoID), ids(moved, kgoID))
	sort.Strings(later)
	require.Equal(t, later, ids(waiting(t, e.group, e.dlq), kgoID), "records added during and after the tick wait")
	require.Equal(t, float64(len(first)), value(t, m.records.WithLabelValues("replayed")))
	// Measured after the pass, while records were still being added.
	require.LessOrEqual(t, value(t, m.depth.WithLabelValues(e.dlq)), float64(during), "waiting measured after the pass")

	tick(t.Context(), cfg, s, m, zap.NewNop())
	require.Empty(t, waiting(t, e.group, e.dlq))
	require.Len(t, readAll(t, e.events), len(first)+len(later))
	require.Equal(t, float64(len(first)+len(later)), value(t, m.records.WithLabelValues("replayed")))
	require.Zero(t, value(t, m.depth.WithLabelValues(e.dlq)))
	require.Zero(t, value(t, m.oldest.WithLabelValues(e.dlq)))
}

// TestDaemonBinaryMetrics runs `dlq-replayer run` and reads its /metrics.
func TestDaemonBinaryMetrics(t *testing.T) {
	e := newEnv(t, 2)
	now := time.Now().UTC()
	var recs []*kgo.Record
	for i := range 100 {
		l := dlq.Letter{OriginalTopic: e.events, OriginalPartition: 0, OriginalOffset: int64(i), Class: errclass.Poison,
			Error: "x", FirstFailedAt: now, FailedAt: now, Attempts: i % 2 * 5}
		recs = append(recs, &kgo.Record{Topic: e.dlq, Key: []byte(strconv.Itoa(i)), Value: []byte("v"), Headers: letterHeaders(l)})
	}
	produce(t, recs...)
	addr := testenv.NewAddr(t)
	p := start(t, append(envOf(e), "METRICS_ADDR="+addr), "run", "--interval", "200ms", "--max-attempts", "5")
	want := []string{
		`auditstream_replayer_records_total{action="replayed"} 50`,
		`auditstream_replayer_records_total{action="parked"} 50`,
		fmt.Sprintf(`auditstream_replayer_waiting_records{topic=%q} 0`, e.dlq),
		fmt.Sprintf(`auditstream_replayer_waiting_records{topic=%q} 50`, e.parked),
		fmt.Sprintf(`auditstream_replayer_oldest_waiting_age_seconds{topic=%q} 0`, e.dlq),
	}
	var body string
	testenv.Await(t, 30*time.Second, "the daemon's metrics", func() (bool, string) {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		body = string(b)
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, "missing " + w
			}
		}
		return true, ""
	})
	age := regexp.MustCompile(fmt.Sprintf(`auditstream_replayer_oldest_waiting_age_seconds\{topic="%s"\} (\S+)`, regexp.QuoteMeta(e.parked))).FindStringSubmatch(body)
	require.NotNil(t, age, grepLines(body, "auditstream_replayer_"))
	v, err := strconv.ParseFloat(age[1], 64)
	require.NoError(t, err)
	require.Greater(t, v, 0.0, "parked records have an age")
	require.Len(t, readAll(t, e.events), 50)
	require.Len(t, readAll(t, e.parked), 50)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, 15*time.Second))
}

func envOf(e env) []string {
	return []string{"KAFKA_BROKERS=" + strings.Join(shared.kafka.Brokers(), ","),
		"EVENTS_TOPIC=" + e.events, "NOTIFICATIONS_TOPIC=" + e.notifications, "DLQ_TOPIC=" + e.dlq,
		"PARKED_TOPIC=" + e.parked, "REPLAYER_GROUP=" + e.group}
}

// TestExitCodes: 2 on usage errors, 1 with a clear message when Kafka
// cannot be reached (quickly), 0 on success; every --help has examples.
func TestExitCodes(t *testing.T) {
	e := newEnv(t, 1)
	ok := envOf(e)
	closed := []string{"KAFKA_BROKERS=" + testenv.NewAddr(t)}

	cases := []struct {
		name    string
		environ []string
		args    []string
		code    int
		out     string
		within  time.Duration
	}{
		{"unknown flag", ok, []string{"replay", "--bogus"}, 2, "unknown flag --bogus", 5 * time.Second},
		{"bad error class", ok, []string{"list", "--error-class", "bogus"}, 2, "--error-class", 5 * time.Second},
		{"unknown command", ok, []string{"frobnicate"}, 2, "unexpected argument", 5 * time.Second},
		{"no command", ok, nil, 2, "", 5 * time.Second},
		{"inspect without offset", ok, []string{"inspect", "-p", "0"}, 2, "--offset", 5 * time.Second},
		{"filters that select nothing", ok, []string{"replay", "--older-than", "2h", "--newer-than", "1h"}, 2, "select nothing", 5 * time.Second},
		{"no brokers", nil, []string{"list"}, 2, "KAFKA_BROKERS", 5 * time.Second},
		{"list, broker down", closed, []string{"list"}, 1, "cannot reach Kafka", 10 * time.Second},
		{"replay, broker down", closed, []string{"replay"}, 1, "cannot reach Kafka", 10 * time.Second},
		{"dry run, broker down", closed, []string{"replay", "--dry-run"}, 1, "cannot reach Kafka", 10 * time.Second},
		{"inspect, broker down", closed, []string{"inspect", "-p", "0", "-o", "0"}, 1, "cannot reach Kafka", 10 * time.Second},
		{"list", ok, []string{"list"}, 0, "0 record(s) waiting in " + e.dlq, 30 * time.Second},
		{"replay", ok, []string{"replay"}, 0, "moved from " + e.dlq + ": 0 replayed", 30 * time.Second},
		{"inspect, no such record", ok, []string{"inspect", "-p", "0", "-o", "0"}, 1, "no record at that offset", 30 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			code, out := execBin(t, c.environ, c.within+5*time.Second, c.args...)
			require.Equal(t, c.code, code, out)
			require.Contains(t, out, c.out)
			require.Less(t, time.Since(began), c.within, "answered quickly")
		})
	}
	for _, cmd := range []string{"run", "replay", "list", "inspect"} {
		t.Run("help "+cmd, func(t *testing.T) {
			code, out := execBin(t, nil, 5*time.Second, cmd, "--help")
			require.Equal(t, 0, code, out)
			require.Contains(t, out, "Examples:")
			require.Contains(t, out, "dlq-replayer "+cmd)
			require.Contains(t, out, "KAFKA_BROKERS")
		})
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func grepLines(s, substr string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestReadsOfOnePartitionBackToBack: reading a partition right after
// reading it (the daemon measures the DLQ right after its pass; inspect
// after list) must not fail with "already being consumed".
func TestReadsOfOnePartitionBackToBack(t *testing.T) {
	e := newEnv(t, 1)
	seed(t, e, e.dlq, 0)
	sess, err := connect(e.cfg(t, "list"), nil, "", nil)
	require.NoError(t, err)
	defer sess.close()
	for i := range 5 {
		r, err := sess.reader.Get(t.Context(), e.dlq, 0, int64(i))
		require.NoError(t, err, "get %d", i)
		require.Equal(t, int64(i), r.Offset)
		st, err := dlq.Measure(t.Context(), sess.reader, e.dlq)
		require.NoError(t, err, "measure after get %d", i)
		require.Equal(t, int64(5), st.Depth)
	}
}

// TestRecordWithoutEnvelopeIsParked: a record in the DLQ without usable
// dlq-original-* headers cannot be replayed; it is parked instead of
// failing every pass (and the daemon with it).
func TestRecordWithoutEnvelopeIsParked(t *testing.T) {
	e := newEnv(t, 1)
	seed(t, e, e.dlq, 0)
	bare := &kgo.Record{Topic: e.dlq, Key: []byte("bare"), Value: []byte("written by hand"),
		Headers: []kgo.RecordHeader{{Key: dlq.HeaderOriginalTopic, Value: []byte(e.events)}, {Key: dlq.HeaderOriginalPartition, Value: []byte("x")}}}
	produce(t, bare)
	seed(t, e, e.dlq, 0)

	out := e.replay(t, "--dry-run")
	require.Contains(t, out, "10 replayed to their original topic, 1 parked")

	cfg := e.cfg(t, "run", "--interval", "200ms")
	reg := prometheus.NewRegistry()
	producer, err := newProducer(cfg, zap.NewNop(), reg)
	require.NoError(t, err)
	s, err := connect(cfg, producer, cfg.Kafka.DLQTopic, zap.NewNop())
	require.NoError(t, err)
	defer s.close()
	m := newDaemonMetrics(reg)
	tick(t.Context(), cfg, s, m, zap.NewNop())
	require.Equal(t, 1.0, value(t, m.passes.WithLabelValues("ok")), "the pass succeeds")
	require.Equal(t, 10.0, value(t, m.records.WithLabelValues("replayed")))
	require.Equal(t, 1.0, value(t, m.records.WithLabelValues("parked")))
	require.Empty(t, waiting(t, e.group, e.dlq))
	parked := readAll(t, e.parked)
	require.Len(t, parked, 1)
	require.Equal(t, bare.Value, parked[0].Value)
	require.Equal(t, bare.Headers, parked[0].Headers, "parked as it was")

	// From the parked topic it has nowhere to go: it stays there.
	require.Contains(t, e.replay(t, "--from-parked"), "0 replayed to their original topic, 0 parked")
	require.Len(t, e.list(t, "--parked"), 1)
}

// TestDaemonConnectRetriesWithOneProducer: the daemon retries connect with
// the producer it built once (and whose metrics it registered once), so a
// Kafka that answers but refuses the topic set-up is retried, not a panic
// on a second metrics registration.
func TestDaemonConnectRetriesWithOneProducer(t *testing.T) {
	e := newEnv(t, 1)
	bad := e.cfg(t, "run", "--topic-replication-factor", "3") // one broker: topic creation fails
	bad.Kafka.DLQTopic = e.dlq + ".unmade"
	producer, err := newProducer(bad, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	for range 3 {
		_, err := connect(bad, producer, bad.Kafka.DLQTopic, zap.NewNop())
		require.ErrorContains(t, err, "cannot reach Kafka")
	}
}
