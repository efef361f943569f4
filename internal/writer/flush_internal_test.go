package writer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
)

// Hand-written fakes for the parts of the batch path that the integration
// tests cannot steer: a store and a DLQ publisher that fail on demand, and
// a session that records what is marked and when.

type fakeStore struct {
	mu sync.Mutex
	// fail decides the outcome of one Write from the events in it.
	fail     func(events []audit.Event) error
	stored   []string // correlation ids, in write order
	writes   int
	onWrite  chan struct{}
	lastSize int
}

func (s *fakeStore) Write(_ context.Context, events []audit.Event, _ []audit.Notification) (store.WriteResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	s.lastSize = len(events)
	if s.onWrite != nil {
		defer func() { s.onWrite <- struct{}{} }()
	}
	if s.fail != nil {
		if err := s.fail(events); err != nil {
			// As the store returns them: classified once, on the error.
			return store.WriteResult{}, &errclass.Error{Class: store.Classify(err), Err: err}
		}
	}
	for _, e := range events {
		s.stored = append(s.stored, e.CorrelationID)
	}
	return store.WriteResult{Events: len(events)}, nil
}

type fakePublisher struct {
	mu        sync.Mutex
	failures  int // the next calls that fail
	calls     int
	published []kafka.Record
	// marksAtPublish is how many offsets the session had marked when the
	// records were acknowledged.
	sess           *fakeSession
	marksAtPublish []int
}

// Publish records what a real publisher would send: the records the
// messages stand for.
func (p *fakePublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.failures > 0 {
		p.failures--
		return &kafka.PublishError{Total: len(msgs), Failed: len(msgs), Err: errors.New("broker down")}
	}
	for _, msg := range msgs {
		r, err := kafka.RecordOf(topic, msg)
		if err != nil {
			return err
		}
		p.published = append(p.published, r)
	}
	if p.sess != nil {
		p.marksAtPublish = append(p.marksAtPublish, len(p.sess.marked()))
	}
	return nil
}

type fakeSession struct {
	ctx   context.Context
	mu    sync.Mutex
	marks []string // "topic/partition@offset" as passed to MarkMessage
}

func (s *fakeSession) Context() context.Context { return s.ctx }
func (s *fakeSession) Commit()                  {}
func (s *fakeSession) MarkMessage(msg *kafka.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, fmt.Sprintf("%s/%d@%d", msg.Topic, msg.Partition, msg.Offset))
}

func (s *fakeSession) marked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.marks)
}

func newTestWriter(t *testing.T, st rowStore, pub deadLetterPublisher, size int, age time.Duration, opts ...func(*Config)) *Writer {
	t.Helper()
	cfg := Config{
		Group: "g", EventsTopic: "ev", NotificationsTopic: "no", DLQTopic: "dlq",
		BatchSize: size, BatchAge: age, MaxBackoff: 20 * time.Millisecond, WriteTimeout: time.Second,
		Rules: audit.DefaultRules(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	w, err := New(cfg, kafka.Config{Brokers: []string{"127.0.0.1:1"}, Version: "3.6.0"}, st, pub, zaptest.NewLogger(t), NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	return w
}

// items returns n decoded events, spread over partitions 0 and 1 in offset
// order; corr of event i is "c<i>".
func items(n int) []item {
	out := make([]item, n)
	for i := range out {
		out[i] = item{
			msg:   &kafka.Message{Topic: "ev", Partition: int32(i % 2), Offset: int64(i / 2)},
			event: &audit.Event{CorrelationID: fmt.Sprintf("c%d", i)},
		}
	}
	return out
}

func pgErr(code string) error {
	return fmt.Errorf("write batch: %w", &pgconn.PgError{Code: code, Message: "fake " + code})
}

func TestBatchLoopFlushesOnAgeAndSize(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		age      time.Duration
		send     int
		wantSize int
	}{
		{name: "age", size: 1000, age: 30 * time.Millisecond, send: 3, wantSize: 3},
		{name: "size", size: 4, age: time.Hour, send: 4, wantSize: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{onWrite: make(chan struct{}, 10)}
			w := newTestWriter(t, st, &fakePublisher{}, tt.size, tt.age)
			sess := &fakeSession{ctx: t.Context()}
			in := make(chan item, tt.size)
			done := make(chan struct{})
			go w.batchLoop(sess, in, done)
			for _, it := range items(tt.send) {
				in <- it
			}
			select {
			case <-st.onWrite:
			case <-time.After(5 * time.Second):
				t.Fatal("no flush")
			}
			require.Equal(t, tt.wantSize, st.lastSize)
			// The second batch gets a fresh age: a flush by age again.
			for _, it := range items(1) {
				in <- it
			}
			if tt.name == "age" {
				select {
				case <-st.onWrite:
				case <-time.After(5 * time.Second):
					t.Fatal("the second batch was not flushed by age")
				}
				require.Equal(t, 1, st.lastSize)
			}
			close(in) // a session end: the rest is flushed once more
			<-done
			require.Len(t, st.stored, tt.send+1)
		})
	}
}

func TestMarksOnlyAfterStoreAndDeadLetterAck(t *testing.T) {
	st := &fakeStore{fail: func(events []audit.Event) error {
		for _, e := range events {
			if e.CorrelationID == "c5" {
				return pgErr("22P02") // data exception: poison
			}
		}
		return nil
	}}
	sess := &fakeSession{ctx: t.Context()}
	pub := &fakePublisher{failures: 2, sess: sess}
	w := newTestWriter(t, st, pub, 100, time.Hour)

	batch := items(10)
	batch[7].event, batch[7].poison = nil, "invalid audit event: bad"
	require.True(t, w.flush(sess, batch, false))

	// Stored: everything but the poison record c5 and the invalid c7.
	require.ElementsMatch(t, []string{"c0", "c1", "c2", "c3", "c4", "c6", "c8", "c9"}, st.stored)
	require.Equal(t, 3, pub.calls, "dead letters retried until acknowledged")
	require.Len(t, pub.published, 2)
	require.Equal(t, []int{0}, pub.marksAtPublish, "nothing marked before the DLQ acknowledged")
	classes := map[string]string{}
	for _, r := range pub.published {
		require.Equal(t, "dlq", r.Topic)
		l, ok := dlq.Parse(r.Headers)
		require.True(t, ok)
		classes[fmt.Sprintf("%d@%d", l.OriginalPartition, l.OriginalOffset)] = string(l.Class)
	}
	require.Equal(t, map[string]string{"1@2": "poison", "1@3": "poison"}, classes)
	// The last record of each partition, once.
	require.ElementsMatch(t, []string{"ev/0@4", "ev/1@4"}, sess.marked())
}

func TestFinalFlushAbandonsWithoutMarking(t *testing.T) {
	tests := []struct {
		name      string
		storeErr  error
		pubFails  int
		wantWrite int
	}{
		{name: "database outage", storeErr: pgErr("57P01"), wantWrite: 1},
		{name: "connection refused", storeErr: errors.New("dial tcp: connection refused"), wantWrite: 1},
		{name: "dead-letter publish fails", storeErr: pgErr("22P02"), pubFails: 1000, wantWrite: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{fail: func([]audit.Event) error { return tt.storeErr }}
			pub := &fakePublisher{failures: tt.pubFails}
			w := newTestWriter(t, st, pub, 100, time.Hour)
			sess := &fakeSession{ctx: t.Context()}
			require.False(t, w.flush(sess, items(1), true))
			require.Empty(t, sess.marked())
			require.Equal(t, tt.wantWrite, st.writes, "one attempt")
			require.NoError(t, w.Check(t.Context()), "a last flush does not declare an outage")
		})
	}
}

func TestOutageRetriesUntilBackThenMarks(t *testing.T) {
	down := 3
	st := &fakeStore{}
	st.fail = func([]audit.Event) error {
		if down > 0 {
			down--
			return pgErr("08006")
		}
		return nil
	}
	w := newTestWriter(t, st, &fakePublisher{}, 100, time.Hour)
	sess := &fakeSession{ctx: t.Context()}
	observed := make(chan error, 1)
	st.onWrite = make(chan struct{}, 10)
	go func() {
		<-st.onWrite
		observed <- w.Check(t.Context())
		for range st.onWrite {
		}
	}()
	require.True(t, w.flush(sess, items(4), false))
	close(st.onWrite)
	require.Error(t, <-observed, "Check fails during the outage")
	require.Equal(t, 4, st.writes)
	require.NoError(t, w.Check(t.Context()))
	require.Len(t, st.stored, 4)
	require.ElementsMatch(t, []string{"ev/0@1", "ev/1@1"}, sess.marked())
}

func TestOutageAbandonedWhenSessionEnds(t *testing.T) {
	st := &fakeStore{fail: func([]audit.Event) error { return pgErr("57P03") }, onWrite: make(chan struct{}, 100)}
	w := newTestWriter(t, st, &fakePublisher{}, 100, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	sess := &fakeSession{ctx: ctx}
	go func() {
		<-st.onWrite
		cancel() // a rebalance during the outage
	}()
	require.False(t, w.flush(sess, items(3), false))
	require.Empty(t, sess.marked())
	require.Error(t, w.Check(t.Context()), "the outage lasts until a write succeeds")
}

// TestFailedRecordIsolatedAndDeadLettered: a record the database keeps
// refusing as failed (23514) is isolated down to itself and dead-lettered
// as failed; the rest of its batch is stored. (That a partition dropped
// behind the store's cache is re-created rather than dead-lettered is the
// store's rule: TestWriteCreatesOldPartitionOnDemand, and end to end
// TestDroppedPartitionIsCreatedAgain.)
func TestFailedRecordIsolatedAndDeadLettered(t *testing.T) {
	st := &fakeStore{fail: func(events []audit.Event) error {
		for _, e := range events {
			if e.CorrelationID == "c2" {
				return pgErr("23514")
			}
		}
		return nil
	}}
	pub := &fakePublisher{}
	w := newTestWriter(t, st, pub, 100, time.Hour)
	sess := &fakeSession{ctx: t.Context()}
	require.True(t, w.flush(sess, items(4), false))
	require.Len(t, st.stored, 3)
	require.Len(t, pub.published, 1)
	l, ok := dlq.Parse(pub.published[0].Headers)
	require.True(t, ok)
	require.Equal(t, errclass.Failed, l.Class)
	require.Contains(t, l.Error, "23514")
	require.ElementsMatch(t, []string{"ev/0@1", "ev/1@1"}, sess.marked())
}
