package dlq

import (
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

	fromParked := o
	fromParked.From = "audit.dlq.parked"
	require.Equal(t, ActionReplay, Decide(spent, fromParked, now).Action, "parked records return whatever their attempts")
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
