package dlq

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
)

func TestFilterAndDecide(t *testing.T) {
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	rec := func(class errclass.Class, topic, key string, failedAgo time.Duration, attempts int) Record {
		return Record{
			Message:   kafka.Message{Topic: "audit.dlq", Key: []byte(key), Timestamp: now.Add(-failedAgo)},
			Enveloped: true,
			Letter:    Letter{OriginalTopic: topic, Class: class, FailedAt: now.Add(-failedAgo), Attempts: attempts},
		}
	}
	r := rec(errclass.Poison, "audit.events", "k1", 10*time.Minute, 0)
	tests := []struct {
		name   string
		filter Filter
		match  bool
	}{
		{"no filter", Filter{}, true},
		{"class matches", Filter{ErrorClass: errclass.Poison}, true},
		{"class differs", Filter{ErrorClass: errclass.Failed}, false},
		{"topic differs", Filter{OriginalTopic: "audit.notifications"}, false},
		{"key matches", Filter{Key: "k1"}, true},
		{"key differs", Filter{Key: "k2"}, false},
		{"older than 5m", Filter{OlderThan: 5 * time.Minute}, true},
		{"older than 1h", Filter{OlderThan: time.Hour}, false},
		{"newer than 1h", Filter{NewerThan: time.Hour}, true},
		{"newer than 1m", Filter{NewerThan: time.Minute}, false},
		{"written before now", Filter{Before: now}, true},
		{"written before it", Filter{Before: now.Add(-time.Hour)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.match, tc.filter.Match(r, now))
		})
	}

	o := Options{From: "audit.dlq", ParkedTopic: "audit.dlq.parked", MaxAttempts: 2, Filter: Filter{ErrorClass: errclass.Poison}}
	require.Equal(t, Decision{Record: r, Action: ActionReplay, To: "audit.events"}, Decide(r, o, now))
	spent := rec(errclass.Poison, "audit.events", "k1", time.Minute, 2)
	require.Equal(t, ActionPark, Decide(spent, o, now).Action, "attempts used up")
	other := rec(errclass.Failed, "audit.events", "k1", time.Minute, 0)
	require.Equal(t, Decision{Record: other, Action: ActionKeep, To: "audit.dlq"}, Decide(other, o, now), "not selected: kept in place")

	conflict := rec(errclass.Conflict, "audit.events", "k1", time.Minute, 0)
	all := Options{From: "audit.dlq", ParkedTopic: "audit.dlq.parked", MaxAttempts: 2}
	require.Equal(t, Decision{Record: conflict, Action: ActionPark, To: "audit.dlq.parked"}, Decide(conflict, all, now),
		"a conflict is parked at once: a replay can only repeat it")
	all.Filter.ErrorClass = errclass.Conflict
	require.Equal(t, ActionPark, Decide(conflict, all, now).Action, "also when selected by class")

	fromParked := o
	fromParked.From = "audit.dlq.parked"
	require.Equal(t, ActionReplay, Decide(spent, fromParked, now).Action, "parked records return whatever their attempts")
	fromParked.Filter = Filter{}
	require.Equal(t, ActionReplay, Decide(conflict, fromParked, now).Action, "a person may send a parked conflict back")
}

func TestOutgoingReplacesTheLetterOnReplayOnly(t *testing.T) {
	l := Letter{OriginalTopic: "audit.events", OriginalPartition: 3, OriginalOffset: 42, Class: errclass.Failed,
		Error: "x", FirstFailedAt: time.Unix(100, 0).UTC(), FailedAt: time.Unix(200, 0).UTC(), Attempts: 1}
	orig := []kafka.Header{{Key: []byte("trace"), Value: []byte("t1")}}
	hs := l.Headers(orig)
	r := Record{Message: kafka.Message{Key: []byte("k"), Value: []byte("v"), Headers: hs}, Letter: l, Enveloped: true}

	replayed := outgoing(Decision{Record: r, Action: ActionReplay, To: "audit.events"})
	got, ok := Parse(replayed.Headers)
	require.True(t, ok)
	require.Equal(t, 2, got.Attempts, "one more attempt")
	require.Equal(t, l.FirstFailedAt, got.FirstFailedAt)
	require.Len(t, replayed.Headers, len(hs), "replaced, not appended")
	require.Equal(t, "trace", string(replayed.Headers[0].Key), "other headers first, unchanged")

	parked := outgoing(Decision{Record: r, Action: ActionPark, To: "audit.dlq.parked"})
	require.Equal(t, hs, parked.Headers, "parked byte for byte")
	require.Equal(t, "audit.dlq.parked", parked.Topic)
}

// fakeSource holds the records of one topic per partition (offset = index)
// and records the commits and, through its publisher, the publishes in
// the order they happen.
type fakeSource struct {
	topic      string
	partitions [][]*kafka.Message
	committed  map[int32]int64
	events     []string // "publish p@n records" and "commit p@offset", in order
	failAfter  int      // publishes that succeed before the rest fail (0: none fail)
	publishes  int
}

func newFakeSource(topic string, sizes ...int) *fakeSource {
	s := &fakeSource{topic: topic, committed: map[int32]int64{}}
	for p, n := range sizes {
		var msgs []*kafka.Message
		for o := range n {
			l := Letter{OriginalTopic: "audit.events", OriginalPartition: int32(p), OriginalOffset: int64(o), Class: errclass.Failed}
			msgs = append(msgs, &kafka.Message{Topic: topic, Partition: int32(p), Offset: int64(o),
				Key: []byte(fmt.Sprintf("k%d-%d", p, o)), Headers: l.Headers(nil)})
		}
		s.partitions = append(s.partitions, msgs)
	}
	return s
}

func (s *fakeSource) Spans(topic string) ([]kafka.Span, error) {
	if topic != s.topic {
		return nil, fmt.Errorf("unknown topic %q", topic)
	}
	var spans []kafka.Span
	for p, msgs := range s.partitions {
		spans = append(spans, kafka.Span{Partition: int32(p), From: s.committed[int32(p)], To: int64(len(msgs))})
	}
	return spans, nil
}

func (s *fakeSource) Read(_ context.Context, _ string, span kafka.Span) iter.Seq2[*kafka.Message, error] {
	return func(yield func(*kafka.Message, error) bool) {
		for o := span.From; o < span.To; o++ {
			if !yield(s.partitions[span.Partition][o], nil) {
				return
			}
		}
	}
}

func (s *fakeSource) Commit(_ string, partition int32, offset int64) error {
	s.committed[partition] = offset
	s.events = append(s.events, fmt.Sprintf("commit %d@%d", partition, offset))
	return nil
}

func (s *fakeSource) Publish(_ context.Context, records []kafka.Record) error {
	s.publishes++
	if s.failAfter > 0 && s.publishes > s.failAfter {
		return errors.New("broker down")
	}
	s.events = append(s.events, fmt.Sprintf("publish %d", len(records)))
	return nil
}

func TestReplayPublishesInBatchesThenCommits(t *testing.T) {
	src := newFakeSource("audit.dlq", publishBatch+3, 2, 0)
	o := Options{From: "audit.dlq", ParkedTopic: "audit.dlq.parked", MaxAttempts: 5}
	var seen []Summary
	sum, err := Replay(t.Context(), src, src, o, func(d Decision, total Summary) {
		require.Equal(t, ActionReplay, d.Action)
		seen = append(seen, total)
	})
	require.NoError(t, err)
	require.Equal(t, Summary{Read: publishBatch + 5, Replayed: publishBatch + 5}, sum)
	require.Len(t, seen, publishBatch+5, "one report per decision")
	require.Equal(t, Summary{Read: 1, Replayed: 1}, seen[0], "the totals include the decision")
	require.Equal(t, []string{
		fmt.Sprintf("publish %d", publishBatch), fmt.Sprintf("commit 0@%d", publishBatch),
		"publish 3", fmt.Sprintf("commit 0@%d", publishBatch+3),
		"publish 2", "commit 1@2",
	}, src.events, "each batch acknowledged before its offset is committed; an empty partition costs nothing")

	// Everything was committed: a second pass finds nothing.
	sum, err = Replay(t.Context(), src, src, o, nil)
	require.NoError(t, err)
	require.Zero(t, sum)
}

func TestDryRunMovesNothing(t *testing.T) {
	src := newFakeSource("audit.dlq", 3, 4)
	var decided int
	sum, err := DryRun(t.Context(), src, Options{From: "audit.dlq", ParkedTopic: "audit.dlq.parked", MaxAttempts: 5},
		func(Decision, Summary) { decided++ })
	require.NoError(t, err)
	require.Equal(t, Summary{Read: 7, Replayed: 7}, sum)
	require.Equal(t, 7, decided)
	require.Empty(t, src.events, "no publish, no commit")
}

func TestReplayStopsAtTheLimit(t *testing.T) {
	src := newFakeSource("audit.dlq", 3, 3)
	// Key k0-1 is not selected: kept, and not counted against the limit.
	o := Options{From: "audit.dlq", ParkedTopic: "audit.dlq.parked", MaxAttempts: 5, Limit: 3}
	var keys []string
	sum, err := Replay(t.Context(), src, src, o, func(d Decision, _ Summary) {
		keys = append(keys, string(d.Record.Key)+":"+string(d.Action))
	})
	require.NoError(t, err)
	require.Equal(t, Summary{Read: 3, Replayed: 3}, sum)
	require.Equal(t, []string{"k0-0:replay", "k0-1:replay", "k0-2:replay"}, keys)
	require.Equal(t, []string{"publish 3", "commit 0@3"}, src.events, "the partition after the limit is not read")

	o.Filter = Filter{Key: "k1-2"}
	o.Limit = 1
	sum, err = Replay(t.Context(), src, src, o, nil)
	require.NoError(t, err)
	require.Equal(t, Summary{Read: 3, Replayed: 1, Kept: 2}, sum, "records not selected do not count against the limit")
}

func TestReplayCommitsNothingUnpublished(t *testing.T) {
	src := newFakeSource("audit.dlq", publishBatch+1)
	src.failAfter = 1
	sum, err := Replay(t.Context(), src, src, Options{From: "audit.dlq", ParkedTopic: "audit.dlq.parked", MaxAttempts: 5}, nil)
	require.ErrorContains(t, err, "publish 1 records from audit.dlq/0: broker down")
	require.Equal(t, publishBatch+1, sum.Read)
	require.Equal(t, []string{fmt.Sprintf("publish %d", publishBatch), fmt.Sprintf("commit 0@%d", publishBatch)}, src.events,
		"the failed batch stays uncommitted, for the next pass")
}

// TestTraceContextTravelsThroughTheDLQ: the W3C trace context a record
// came with stays with it, byte for byte and in place, when it is
// dead-lettered, replayed and parked, so the writer's batch span still
// links to the request that published it.
func TestTraceContextTravelsThroughTheDLQ(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	trace := []kafka.Header{
		hdr(kafka.HeaderContentType, "application/json"),
		hdr(kafka.HeaderTraceState, "vendor=1"),
		hdr(kafka.HeaderTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
	}
	orig := &kafka.Message{Topic: "audit.events", Partition: 1, Offset: 9, Headers: trace}
	dead := &kafka.Message{Topic: "audit.dlq", Headers: Failure(orig, errclass.Failed, "boom", now).Headers(orig.Headers)}
	require.Equal(t, trace, dead.Headers[:len(trace)], "dead-lettered")
	r := RecordOf(dead)
	for _, d := range []Decision{
		{Record: r, Action: ActionReplay, To: "audit.events"},
		{Record: r, Action: ActionPark, To: "audit.dlq.parked"},
	} {
		require.Equal(t, trace, outgoing(d).Headers[:len(trace)], "%s", d.Action)
	}
}
