package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/testenv"
)

const duplicatesMetric = "auditstream_writer_duplicates_total"

// TestCrashStoresEveryRecordOnce kills the writer with SIGKILL at random
// moments while 50,000 records stream in, restarting it each time. A kill
// can land anywhere: mid-COPY, between the transaction's commit and the
// offset commit, during a rebalance. Afterwards every record is stored
// exactly once: nothing lost (offsets are committed only after the rows),
// nothing twice (redelivered records are de-duplicated on event_id, the
// client's or the one derived from the record's coordinates).
//
// The kill moments come from a seeded rand; set WRITER_CRASH_SEED to the
// logged seed to replay a failure's schedule.
func TestCrashStoresEveryRecordOnce(t *testing.T) {
	const total = 50_000
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WRITER_CRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "WRITER_CRASH_SEED")
	}
	t.Logf("crash schedule seed %d (replay with WRITER_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	// One kill per equal segment of the stream, at a random number of
	// stored rows within it (kills at least a batch apart, so each
	// restarted writer stores something before it dies), then after a
	// random delay, so the kill falls at any phase of the batch cycle.
	kills := 4 + rng.IntN(2)
	type kill struct {
		atRows int
		delay  time.Duration
	}
	schedule := make([]kill, kills)
	segment := (total - 2000) / kills
	for i := range schedule {
		schedule[i] = kill{
			atRows: 1000 + i*segment + rng.IntN(segment-batchSize),
			delay:  time.Duration(rng.IntN(300)) * time.Millisecond,
		}
	}
	t.Logf("kill schedule: %+v", schedule)

	p := newPipeline(t)
	// Restarted under its name, as a pod is: a static member, each
	// restart gets the partitions back without waiting for a rebalance.
	member := "WRITER_INSTANCE_ID=crash"
	w := startWriter(t, p, "crash-0", member)
	w.awaitReady(30 * time.Second) // the schema is in place
	// 100 chunks of 500, one every 400 ms: the stream lasts about as long
	// as the kills and restarts, so most kills hit a writer that is
	// consuming records as they arrive.
	s := startStream(t, p, total, 500, 400*time.Millisecond)

	for i, k := range schedule {
		testenv.Await(t, catchUpTimeout, fmt.Sprintf("%d rows stored before kill %d", k.atRows, i+1), func() (bool, string) {
			if !w.Running() {
				require.FailNow(t, "writer exited by itself", "writer %s: %s", w.name, w.State())
			}
			n := storedCount(t, p)
			return n >= k.atRows, fmt.Sprintf("%d rows stored, %d records produced", n, s.sent.Load())
		})
		time.Sleep(k.delay) // a random moment, not a synchronisation
		stored, sent := storedCount(t, p), s.sent.Load()
		w.kill()
		t.Logf("kill %d: SIGKILL %s with %d rows stored, %d of %d records produced", i+1, w.name, stored, sent, total)
		w = startWriter(t, p, fmt.Sprintf("crash-%d", i+1), member)
	}

	want := s.wait(t, catchUpTimeout)
	awaitCaughtUp(t, p, total)
	requireExactlyOnce(t, p, want)
	requireDLQEmpty(t, p)
	// Killed mid-batch, the hash chains have neither a gap nor a fork: a
	// batch's heads commit or roll back with its rows.
	requireChains(t, p, loadKeys(t, shared.keys.KeysFile), 997)
	t.Logf("last writer skipped %v redelivered duplicates", w.metric(duplicatesMetric))
}

// TestRebalanceSurvivorTakesOver runs two writers in one group and stops one
// mid-stream, first with SIGTERM (it leaves the group after flushing), then
// a replacement with SIGKILL (the group notices when its session expires).
// Each time the survivor takes over every partition, and every record is
// stored exactly once.
func TestRebalanceSurvivorTakesOver(t *testing.T) {
	const perPhase = 20_000
	p := newPipeline(t)
	a := startWriter(t, p, "rebalance-a")
	b := startWriter(t, p, "rebalance-b")
	a.awaitReady(30 * time.Second)
	b.awaitReady(30 * time.Second)
	awaitOwners(t, p, a.name, b.name)

	var want []uuid.UUID
	stopMidStream := func(victim *writerProc, stop func(), storedBefore int) *stream {
		t.Helper()
		// 80 chunks of 250, one every 50 ms: about 4 s of stream.
		s := startStream(t, p, perPhase, 250, 50*time.Millisecond)
		testenv.Await(t, catchUpTimeout, "both writers storing", func() (bool, string) {
			n := storedCount(t, p) - storedBefore
			return n >= perPhase/5, fmt.Sprintf("%d rows of this phase stored", n)
		})
		sent := s.sent.Load()
		stop()
		t.Logf("stopped %s with %d of %d records of the phase produced", victim.name, sent, perPhase)
		return s
	}

	// Phase 1: b is stopped with SIGTERM.
	s := stopMidStream(b, func() {
		start := time.Now()
		b.signal(syscall.SIGTERM)
		require.Zero(t, b.WaitExit(t, gracePeriod), "writer %s exits 0 on SIGTERM", b.name)
		t.Logf("%s exited 0 %s after SIGTERM", b.name, time.Since(start).Round(time.Millisecond))
		// A static member stopped on purpose leaves the group before it
		// exits, rather than holding its partitions until its session
		// expires as a crashed one does.
		_, owned, err := assignment(t, p)
		require.NoError(t, err)
		require.NotContains(t, owned, b.name, "%s is still a member of the group after exiting on SIGTERM", b.name)
	}, 0)
	awaitOwners(t, p, a.name)
	want = append(want, s.wait(t, catchUpTimeout)...)
	awaitCaughtUp(t, p, len(want))
	requireExactlyOnce(t, p, want)
	// b flushed and committed before leaving the group, so a resumed b's
	// partitions where b stopped: nothing came twice.
	require.Zero(t, a.metric(duplicatesMetric), "records redelivered to %s after a graceful handover", a.name)

	// Phase 2: a replacement c joins, and is killed with SIGKILL.
	// Its session times out after Kafka's shortest (6 s).
	c := startWriter(t, p, "rebalance-c", "GROUP_SESSION_TIMEOUT=6s")
	c.awaitReady(30 * time.Second)
	awaitOwners(t, p, a.name, c.name)
	s = stopMidStream(c, c.kill, len(want))
	// The group rebalances once c's session times out.
	awaitOwners(t, p, a.name)
	want = append(want, s.wait(t, catchUpTimeout)...)
	awaitCaughtUp(t, p, len(want))
	requireExactlyOnce(t, p, want)
	t.Logf("%s skipped %v redelivered duplicates in all", a.name, a.metric(duplicatesMetric))

	requireDLQEmpty(t, p)
	// Through both handovers the chains stayed single and unbroken.
	requireChains(t, p, loadKeys(t, shared.keys.KeysFile), 997)
	a.signal(syscall.SIGTERM)
	require.Zero(t, a.WaitExit(t, gracePeriod), "writer %s exits 0 on SIGTERM", a.name)
}

// TestSIGTERMDrainsAndExits stops a writer with SIGTERM while it is in the
// middle of storing a batch (held there by a table lock the test takes): it
// reports itself not ready at once, finishes the batch, flushes the rest,
// commits the offsets and exits 0 within the grace period. A writer started
// afterwards resumes exactly where the first stopped: it stores the rest
// and re-stores nothing (its duplicates counter stays 0).
func TestSIGTERMDrainsAndExits(t *testing.T) {
	const total = 20_000
	ctx := t.Context()
	p := newPipeline(t)
	w := startWriter(t, p, "graceful-1")
	w.awaitReady(30 * time.Second)
	// 80 chunks of 250, one every 50 ms: about 4 s of stream.
	s := startStream(t, p, total, 250, 50*time.Millisecond)
	testenv.Await(t, catchUpTimeout, "writer storing", func() (bool, string) {
		n := storedCount(t, p)
		return n >= total/5, fmt.Sprintf("%d rows stored", n)
	})

	// Hold the writer inside a flush: inserts into the event-id register
	// wait for the test's SHARE lock.
	conn, err := shared.db.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	locked := true
	unlock := func() {
		if locked {
			locked = false
			require.NoError(t, tx.Rollback(ctx))
		}
	}
	defer unlock()
	_, err = tx.Exec(ctx, `LOCK TABLE audit_event_ids IN SHARE MODE`)
	require.NoError(t, err)
	testenv.Await(t, 10*time.Second, "writer blocked in a flush", func() (bool, string) {
		var waiting int
		require.NoError(t, shared.db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO audit_event_ids%'`).Scan(&waiting))
		return waiting > 0, fmt.Sprintf("%d writer transactions waiting", waiting)
	})

	sigterm := time.Now()
	w.signal(syscall.SIGTERM)
	// While the batch is held the process must still run, serve its
	// endpoints, and already refuse readiness (SPEC 7).
	readyWhileDraining, turned := "", false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(5 * time.Second); !turned && time.Now().Before(deadline); <-tick.C {
		require.True(t, w.Running(), "writer %s exited with a batch still in flight: %s", w.name, w.State())
		code, body, err := w.get("/health/ready")
		if err != nil {
			readyWhileDraining = err.Error()
			continue
		}
		readyWhileDraining = fmt.Sprintf("%d %s", code, body)
		turned = code == http.StatusServiceUnavailable
	}
	// An assert, not a require: the drain itself is still checked below.
	assert.True(t, turned, "/health/ready still answers %q 5 s into the drain after SIGTERM (SPEC 7: readiness goes 503 first)",
		readyWhileDraining)
	code, _, err := w.get("/health/live")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "/health/live while draining")
	t.Logf("while draining: /health/ready %s", readyWhileDraining)

	unlockAt := time.Now()
	unlock()
	require.Zero(t, w.WaitExit(t, gracePeriod-time.Since(sigterm)), "writer %s exits 0 on SIGTERM", w.name)
	t.Logf("%s exited 0 %s after SIGTERM (%s after the lock was released); %d of %d records produced",
		w.name, time.Since(sigterm).Round(time.Millisecond), time.Since(unlockAt).Round(time.Millisecond), s.sent.Load(), total)
	storedByFirst := storedCount(t, p)

	w2 := startWriter(t, p, "graceful-2")
	want := s.wait(t, catchUpTimeout)
	awaitCaughtUp(t, p, total)
	requireExactlyOnce(t, p, want)
	requireDLQEmpty(t, p)
	require.Zero(t, w2.metric(duplicatesMetric),
		"%s re-stored records the first writer had stored (%d rows) before its graceful exit", w2.name, storedByFirst)

	// An idle writer stops promptly.
	sigterm = time.Now()
	w2.signal(syscall.SIGTERM)
	require.Zero(t, w2.WaitExit(t, 10*time.Second), "idle writer %s exits 0 on SIGTERM", w2.name)
	t.Logf("idle %s exited 0 %s after SIGTERM", w2.name, time.Since(sigterm).Round(time.Millisecond))
}

// TestRestartedStaticMemberKeepsPartitions kills a writer with SIGKILL and
// starts it again under the same WRITER_INSTANCE_ID, as Kubernetes restarts
// a crashed container in its pod. The coordinator hands the new process
// the dead one's partitions in the same generation: no rebalance, so no
// wait for the dead member's session to expire (GROUP_SESSION_TIMEOUT,
// set here past what the test would wait for a rebalance to settle). A
// dynamic member, or a static one under another name, joins a new
// generation once that session has expired. How many seconds the restart
// takes is measured by make bench (writer.restart.*), not asserted here.
func TestRestartedStaticMemberKeepsPartitions(t *testing.T) {
	p := newPipeline(t)
	env := []string{"WRITER_INSTANCE_ID=static-writer", "GROUP_SESSION_TIMEOUT=29s"}
	w := startWriter(t, p, "static-1", env...)
	w.awaitReady(30 * time.Second)
	awaitOwners(t, p, w.name)
	want := startStream(t, p, 2000, 500, 10*time.Millisecond).wait(t, catchUpTimeout)
	awaitCaughtUp(t, p, len(want))
	before := sessionGenerations(t, w)
	require.Len(t, before, 1, "one session before the kill")

	w.kill()
	w = startWriter(t, p, "static-2", env...)
	want = append(want, startStream(t, p, 2000, 500, 10*time.Millisecond).wait(t, catchUpTimeout)...)
	awaitCaughtUp(t, p, len(want))
	requireExactlyOnce(t, p, want)
	awaitOwners(t, p, w.name)
	require.Equal(t, before, sessionGenerations(t, w),
		"the restarted member resumes the generation its predecessor was in: the group did not rebalance")
}

// sessionGenerations lists the generations of the consumer group sessions
// the writer has started, from its log.
func sessionGenerations(t *testing.T, w *writerProc) []int32 {
	t.Helper()
	var gens []int32
	for line := range strings.SplitSeq(w.Stderr.String(), "\n") {
		var entry struct {
			Msg        string `json:"msg"`
			Generation *int32 `json:"generation"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Msg != "consumer group session started" {
			continue
		}
		require.NotNil(t, entry.Generation, "session log line without its generation: %s", line)
		gens = append(gens, *entry.Generation)
	}
	return gens
}

// TestSharedInstanceIDExits: two live writers under one WRITER_INSTANCE_ID
// (two writers on one host, both defaulting to its name) would fence each
// other in turn for ever; the coordinator fences the older, which exits 1
// saying why, and the newer keeps the partitions.
func TestSharedInstanceIDExits(t *testing.T) {
	p := newPipeline(t)
	twin := "WRITER_INSTANCE_ID=twin"
	a := startWriter(t, p, "twin-a", twin)
	a.awaitReady(30 * time.Second)
	awaitOwners(t, p, a.name)
	b := startWriter(t, p, "twin-b", twin)
	require.Equal(t, 1, a.WaitExit(t, catchUpTimeout), "the fenced writer exits 1")
	require.Contains(t, a.Stderr.String(), `with instance id \"twin\" (WRITER_INSTANCE_ID): each writer needs its own`)
	awaitOwners(t, p, b.name)
	require.True(t, b.Running(), "the newer writer keeps running")
}
