package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/testenv"
)

// TestTwoDaemonsMoveEachRecordOnce: two `dlq-replayer run` daemons on one
// DLQ share its partitions as members of the replayer's consumer group, so
// that each record is moved by one of them: 20 poison records, replayed
// until they have used up two attempts, end as exactly 20 parked records
// (not one copy per daemon per round, which multiplied the DLQ).
func TestTwoDaemonsMoveEachRecordOnce(t *testing.T) {
	e := newEnv(t, 3)
	runWriter(t, e)
	const n = 20
	for i := range n {
		produce(t, &kgo.Record{Topic: e.events, Key: fmt.Appendf(nil, "poison-%d", i), Value: []byte("not json")})
	}
	testenv.Await(t, 30*time.Second, "the poison records dead-lettered", func() (bool, string) {
		got := total(ends(t, e.dlq))
		return got == n, fmt.Sprintf("%d in the DLQ", got)
	})

	var daemons []*proc
	for range 2 {
		daemons = append(daemons, start(t, append(envOf(e), "METRICS_ADDR="+testenv.NewAddr(t)),
			"run", "--interval", "2s", "--max-attempts", "2"))
	}
	testenv.Await(t, 2*time.Minute, "every record parked and nothing in flight", func() (bool, string) {
		parked, dead := total(ends(t, e.parked)), total(ends(t, e.dlq))
		handled := total(committed(t, e.group, e.dlq))
		events, stored := total(ends(t, e.events)), total(committed(t, e.tag+".writer", e.events))
		status := fmt.Sprintf("%d parked; DLQ %d, committed %d; events %d, consumed %d", parked, dead, handled, events, stored)
		return parked >= n && handled == dead && stored == events, status
	})
	require.Equal(t, int64(n), total(ends(t, e.parked)), "each record parked once")
	keys := map[string]int{}
	for _, r := range readAll(t, e.parked) {
		keys[string(r.Key)]++
		require.Equal(t, 2, attempts(t, r))
	}
	require.Len(t, keys, n)

	for i, d := range daemons {
		require.True(t, d.running(), "daemon %d exited: %s", i, d.out.Tail(2000))
		require.Regexp(t, `consumer group session started.*"partitions": \[\d`, d.out.String(), "daemon %d held partitions", i)
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, d.wait(t, 30*time.Second))
	}
}

// TestManualReplayNextToADaemon: a manual `replay` while a daemon runs
// joins the group too and moves only the partitions it is given, saying
// which ones the daemon keeps; nothing is moved twice.
func TestManualReplayNextToADaemon(t *testing.T) {
	e := newEnv(t, 2)
	daemon := start(t, append(envOf(e), "METRICS_ADDR="+testenv.NewAddr(t)), "run", "--interval", "1h")
	testenv.Await(t, 30*time.Second, "the daemon's first pass", func() (bool, string) {
		return strings.Contains(daemon.out.String(), "dlq-replayer running") &&
			strings.Contains(daemon.out.String(), "consumer group session started"), "not yet"
	})
	seed(t, e, e.dlq, 0)
	seed(t, e, e.dlq, 0)
	waitingBefore := waiting(t, e.group, e.dlq)
	require.Len(t, waitingBefore, 10)

	code, out := execBin(t, envOf(e), 90*time.Second, "replay")
	require.Equal(t, 0, code, out)
	require.Regexp(t, `partitions \[\d\] of \S+ are held by other members of consumer group`, out)
	left := waiting(t, e.group, e.dlq)
	require.NotEmpty(t, left, "the daemon's partition is left to it")
	moved := len(readAll(t, e.events)) + len(readAll(t, e.notifications))
	require.Equal(t, len(waitingBefore)-len(left), moved, "what left the DLQ was moved once")
	part := left[0].Partition
	for _, r := range left {
		require.Equal(t, part, r.Partition, "one partition left, the daemon's")
	}

	require.NoError(t, daemon.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, daemon.wait(t, 30*time.Second))
}
