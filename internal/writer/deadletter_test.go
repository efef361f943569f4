package writer_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
)

// dlqHeaders are the dead-letter headers of SPEC 6.1.
var dlqHeaders = []string{
	dlq.HeaderOriginalTopic, dlq.HeaderOriginalPartition, dlq.HeaderOriginalOffset, dlq.HeaderErrorClass,
	dlq.HeaderError, dlq.HeaderFirstFailedAt, dlq.HeaderFailedAt, dlq.HeaderAttempts,
	dlq.HeaderOriginalTopicID, dlq.HeaderOriginalTimestamp,
}

// requireDeadLetter checks a DLQ record against the record it stands for:
// key, value and non-dlq headers byte for byte, and exactly one of each
// dlq-* header.
func requireDeadLetter(t *testing.T, orig, dead *kgo.Record, class errclass.Class) dlq.Letter {
	t.Helper()
	require.Equal(t, orig.Key, dead.Key, "key")
	require.Equal(t, orig.Value, dead.Value, "value")
	var kept []kgo.RecordHeader
	for _, h := range dead.Headers {
		if !strings.HasPrefix(h.Key, "dlq-") {
			kept = append(kept, h)
		}
	}
	var want []kgo.RecordHeader
	for _, h := range orig.Headers {
		if !strings.HasPrefix(h.Key, "dlq-") {
			want = append(want, h)
		}
	}
	require.Equal(t, want, kept, "original headers, in order")
	for _, k := range dlqHeaders {
		require.Len(t, header(dead, k), 1, "exactly one %s header", k)
	}
	require.Len(t, dead.Headers, len(want)+len(dlqHeaders), "no other headers")

	require.Equal(t, string(class), header(dead, dlq.HeaderErrorClass)[0])
	reason := header(dead, dlq.HeaderError)[0]
	require.NotEmpty(t, reason)
	require.LessOrEqual(t, len(reason), dlq.MaxErrorBytes)
	for _, k := range []string{dlq.HeaderFirstFailedAt, dlq.HeaderFailedAt} {
		_, err := time.Parse(time.RFC3339, header(dead, k)[0])
		require.NoError(t, err, "%s is RFC 3339", k)
	}
	hs := make([]kafka.Header, len(dead.Headers))
	for i, h := range dead.Headers {
		hs[i] = kafka.Header{Key: []byte(h.Key), Value: h.Value}
	}
	l, ok := dlq.Parse(hs)
	require.True(t, ok)
	if len(header(orig, dlq.HeaderOriginalTopic)) == 0 {
		// First failure: the origin is the record itself, whole.
		require.True(t, l.RecordOrigin)
		require.NotEmpty(t, l.OriginalTopicID, "kfake assigns topic ids")
		require.Equal(t, orig.Timestamp.UnixMilli(), l.OriginalTimestamp)
	}
	return l
}

// TestPoisonIsolation: three bad records among 1,000 go to the DLQ, each
// alone and with the reason; the 997 others are stored. A replayed dead
// letter that fails again keeps its origin and replaces its dlq-* headers.
func TestPoisonIsolation(t *testing.T) {
	tp := newTopics(t)
	r := startWriter(t, tp, rigOptions{batchSize: 400})
	p := prefix(t)

	// Valid JSON and a valid event for the API's rules that PostgreSQL
	// refuses as a data exception (class 22): a row-level database error.
	// Validation now refuses every value known to do that (a number jsonb
	// cannot store, such as 1e200000), so a trigger refuses this one row.
	dbBad := minimalEvent(p + "db-bad")
	dbBadValue := dbBad.AppendJSON(nil)
	_, err := audit.DefaultRules().ParseEvent(dbBadValue, time.Now())
	require.NoError(t, err, "passes audit validation")
	refuse := "refuse_" + strings.ReplaceAll(strings.TrimSuffix(p, "-"), "-", "_")
	_, err = env.db.Pool().Exec(t.Context(), fmt.Sprintf(`
		CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.correlation_id = %[2]s THEN
				RAISE EXCEPTION 'value out of range for this test' USING ERRCODE = 'numeric_value_out_of_range';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER %[1]s BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION %[1]s()`,
		refuse, "'"+p+"db-bad'"))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := env.db.Pool().Exec(context.Background(), fmt.Sprintf(`DROP TRIGGER %[1]s ON audit_events; DROP FUNCTION %[1]s()`, refuse))
		require.NoError(t, err)
	})

	badOutcome := minimalEvent(p + "bad-outcome")
	badOutcome.EventOutcome = "maybe"

	bad := map[int]struct {
		value  []byte
		reason string // a substring of dlq-error naming the cause
	}{
		17:  {value: []byte(`{"version": "1", "event_type": oops}`), reason: "JSON"},
		500: {value: badOutcome.AppendJSON(nil), reason: "event_outcome"},
		911: {value: dbBadValue, reason: "22003"},
	}
	recs := make([]*kgo.Record, 1000)
	for i := range recs {
		corr := fmt.Sprintf("%s%04d", p, i)
		rec := eventRecord(tp.events, minimalEvent(corr))
		rec.Headers = append(rec.Headers,
			kgo.RecordHeader{Key: "x-seq", Value: []byte(itoa(i))},
			kgo.RecordHeader{Key: "x-bin", Value: []byte{0, 0xff, 'a', 0x80}},
			kgo.RecordHeader{Key: "x-empty", Value: []byte{}},
		)
		if b, ok := bad[i]; ok {
			rec.Value = b.value
		}
		recs[i] = rec
	}
	produce(t, recs...)

	eventually(t, 30*time.Second, func() bool {
		return countEvents(t, p) == 997 && r.metric("auditstream_writer_dead_letters_total", "class", "poison") == 3
	}, "997 stored and 3 dead-lettered; have %d stored", func() int { return countEvents(t, p) })
	require.EqualValues(t, 3, endOffsets(t, tp.dlq), "exactly 3 records in the DLQ")
	require.Zero(t, r.metric("auditstream_writer_dead_letters_total", "class", "failed"))

	dead := consumeAll(t, tp.dlq, 3)
	byIndex := map[int]*kgo.Record{}
	for _, d := range dead {
		seq := header(d, "x-seq")
		require.Len(t, seq, 1)
		var i int
		_, err := fmt.Sscan(seq[0], &i)
		require.NoError(t, err)
		byIndex[i] = d
	}
	require.Len(t, byIndex, 3)
	for i, b := range bad {
		d, ok := byIndex[i]
		require.True(t, ok, "record %d dead-lettered", i)
		orig := recs[i]
		l := requireDeadLetter(t, orig, d, errclass.Poison)
		require.Equal(t, tp.events, l.OriginalTopic)
		require.Equal(t, orig.Partition, l.OriginalPartition)
		require.Equal(t, orig.Offset, l.OriginalOffset)
		require.Contains(t, l.Error, b.reason, "dlq-error names the cause")
		require.Equal(t, header(d, dlq.HeaderFirstFailedAt), header(d, dlq.HeaderFailedAt))
		require.Equal(t, []string{"0"}, header(d, dlq.HeaderAttempts))
		require.WithinDuration(t, time.Now(), l.FailedAt, time.Minute)
	}
	// None of the bad ones is stored; every good one is, once.
	require.Zero(t, countEvents(t, p+"db-bad"))
	require.Zero(t, countEvents(t, p+"bad-outcome"))
	require.Equal(t, 997, count(t, `SELECT count(DISTINCT correlation_id) FROM audit_events WHERE correlation_id LIKE $1 || '%'`, p))

	// Replay the database-error record as the replayer does: back to its
	// original topic with its dlq-* headers and dlq-attempts + 1.
	prev := byIndex[911]
	replay := &kgo.Record{Topic: tp.events, Key: prev.Key, Value: prev.Value}
	for _, h := range prev.Headers {
		if h.Key == dlq.HeaderAttempts {
			h.Value = []byte("1")
		}
		replay.Headers = append(replay.Headers, h)
	}
	produce(t, replay)
	eventually(t, 15*time.Second, func() bool {
		return r.metric("auditstream_writer_dead_letters_total", "class", "poison") == 4
	}, "the replayed record dead-lettered again")
	require.EqualValues(t, 4, endOffsets(t, tp.dlq))
	again := consumeAll(t, tp.dlq, 4)[3]
	l := requireDeadLetter(t, recs[911], again, errclass.Poison)
	for _, k := range []string{dlq.HeaderOriginalTopic, dlq.HeaderOriginalPartition, dlq.HeaderOriginalOffset, dlq.HeaderFirstFailedAt} {
		require.Equal(t, header(prev, k), header(again, k), "%s kept", k)
	}
	require.Equal(t, []string{"1"}, header(again, dlq.HeaderAttempts), "attempts kept from the replayed headers")
	require.NotEqual(t, header(prev, dlq.HeaderFailedAt), header(again, dlq.HeaderFailedAt), "a new dlq-failed-at")
	require.True(t, l.FailedAt.After(l.FirstFailedAt))
	require.Contains(t, l.Error, "22003")
	require.Zero(t, countEvents(t, p+"db-bad"))
}

// TestFailedClass: a record the database refuses for a reason that may
// clear (here a CHECK constraint added later, SQLSTATE 23514) goes to the
// DLQ as failed; the rest of its batch is stored.
func TestFailedClass(t *testing.T) {
	tp := newTopics(t)
	p := prefix(t)
	blocked := fmt.Sprintf("blocked.%d", seq.Add(1))

	// On the partitions, NOT VALID (no scan of existing rows): what a later
	// migration might add. Only this test's event_type is refused, so the
	// tests sharing the database are not affected.
	ctx := t.Context()
	rows, err := env.db.Pool().Query(ctx, `SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'audit_events'::regclass`)
	require.NoError(t, err)
	partitions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	name := fmt.Sprintf("writer_test_failed_%d", seq.Add(1))
	for _, part := range partitions {
		_, err := env.db.Pool().Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s CHECK (event_type <> %s) NOT VALID`,
			pgx.Identifier{part}.Sanitize(), name, quote(blocked)))
		require.NoError(t, err)
	}
	dropConstraint := sync.OnceFunc(func() {
		for _, part := range partitions {
			_, err := env.db.Pool().Exec(context.Background(), fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s`,
				pgx.Identifier{part}.Sanitize(), name))
			if err != nil {
				t.Errorf("drop constraint: %v", err)
			}
		}
	})
	t.Cleanup(dropConstraint)

	r := startWriter(t, tp, rigOptions{batchSize: 100})
	recs := make([]*kgo.Record, 60)
	for i := range recs {
		e := minimalEvent(fmt.Sprintf("%s%02d", p, i))
		if i == 41 {
			e.EventType = blocked
		}
		recs[i] = eventRecord(tp.events, e)
	}
	produce(t, recs...)
	eventually(t, 20*time.Second, func() bool {
		return countEvents(t, p) == 59 && r.metric("auditstream_writer_dead_letters_total", "class", "failed") == 1
	}, "59 stored, 1 dead-lettered as failed; have %d stored", func() int { return countEvents(t, p) })
	require.EqualValues(t, 1, endOffsets(t, tp.dlq))
	require.Zero(t, r.metric("auditstream_writer_dead_letters_total", "class", "poison"))
	d := consumeAll(t, tp.dlq, 1)[0]
	l := requireDeadLetter(t, recs[41], d, errclass.Failed)
	require.Equal(t, recs[41].Partition, l.OriginalPartition)
	require.Equal(t, recs[41].Offset, l.OriginalOffset)
	require.Contains(t, l.Error, "23514")
	require.Contains(t, l.Error, name)
	require.Zero(t, r.metric("auditstream_writer_outage"))

	// The cause clears (the constraint goes); the replayed record is
	// stored under the id of its original coordinates, once, however
	// often it is replayed.
	dropConstraint()
	replay := &kgo.Record{Topic: tp.events, Key: d.Key, Value: d.Value}
	for _, h := range d.Headers {
		if h.Key == dlq.HeaderAttempts {
			h.Value = []byte("1")
		}
		replay.Headers = append(replay.Headers, h)
	}
	replayed := produce(t, replay)[0]
	eventually(t, 15*time.Second, func() bool { return countEvents(t, p) == 60 }, "the replayed record stored")
	id := recordID(t, env.admin, recs[41])
	require.NotEqual(t, id, recordID(t, env.admin, replayed))
	require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND event_type = $2`, id, blocked))

	again := *replay
	again.Partition, again.Offset = 0, 0
	produce(t, &again)
	eventually(t, 15*time.Second, func() bool {
		return r.metric("auditstream_writer_duplicates_total", "table", "audit_events") == 1
	}, "a second replay is a duplicate")
	require.Equal(t, 60, countEvents(t, p))
	require.EqualValues(t, 1, endOffsets(t, tp.dlq))
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
