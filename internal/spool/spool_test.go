package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/testenv"
)

// fakeKafka is the publisher behind the spool: it fails while down (with
// the error Kafka's publisher gives when the brokers are gone) and keeps
// what it acknowledged.
type fakeKafka struct {
	mu   sync.Mutex
	down bool
	err  error // what a publish returns while down
	got  []published
}

type published struct {
	topic string
	msg   *message.Message
}

func (f *fakeKafka) Publish(topic string, msgs ...*message.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return f.err
	}
	for _, m := range msgs {
		f.got = append(f.got, published{topic, m})
	}
	return nil
}

func (f *fakeKafka) Close() error { return nil }

func (f *fakeKafka) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeKafka) published() []published {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]published(nil), f.got...)
}

var errBrokersGone = &kafka.PublishError{Total: 1, Failed: 1, Err: errors.New("kafka: client has run out of available brokers")}

func newFakeKafka(down bool) *fakeKafka { return &fakeKafka{down: down, err: errBrokersGone} }

type harness struct {
	t     *testing.T
	dir   string
	kafka *fakeKafka
	store *Store
	pub   *Publisher
	reg   *prometheus.Registry
	logs  *observer.ObservedLogs
	stop  func()
}

// open opens the spool in dir with a drainer running until stop (or the
// test's end).
func open(t *testing.T, dir string, k *fakeKafka, maxBytes int64) *harness {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	store, err := Open(Config{Dir: dir, MaxBytes: maxBytes, SegmentBytes: 64 << 10}, zap.New(core), reg)
	require.NoError(t, err)
	h := &harness{t: t, dir: dir, kafka: k, store: store, reg: reg, logs: logs}
	h.pub = NewPublisher(k, store, zap.New(core))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.pub.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
			require.NoError(t, store.Close())
		})
	}
	t.Cleanup(h.stop)
	return h
}

// message builds the message of event i as the API does: key and headers
// (a principal, its signature, a trace context) in the record metadata.
func event(i int) *message.Message {
	return kafka.NewMessage(fmt.Sprintf("id-%05d", i), fmt.Appendf(nil, "key-%d", i%7), fmt.Appendf(nil, `{"n":%d}`, i), []kafka.Header{
		{Key: []byte(kafka.HeaderPrincipal), Value: []byte("svc-a")},
		{Key: []byte(kafka.HeaderPrincipalSig), Value: []byte("kid:sig")},
		{Key: []byte("traceparent"), Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
		{Key: []byte("empty"), Value: nil},
	})
}

// requireRecords checks that Kafka got events from..to-1 on topic, in
// order, each the same record as the one published.
func requireRecords(t *testing.T, got []published, topic string, from, to int) {
	t.Helper()
	require.Len(t, got, to-from)
	for i, p := range got {
		want := event(from + i)
		require.Equal(t, topic, p.topic)
		require.Equal(t, want.UUID, p.msg.UUID)
		require.Equal(t, []byte(want.Payload), []byte(p.msg.Payload))
		wantRec, err := kafka.RecordOf(topic, want)
		require.NoError(t, err)
		gotRec, err := kafka.RecordOf(topic, p.msg)
		require.NoError(t, err)
		require.Equal(t, wantRec, gotRec, "key, headers (in order, nil kept) and value byte for byte")
	}
}

func TestSpoolsWhileKafkaIsDownAndDrainsInOrder(t *testing.T) {
	k := newFakeKafka(false)
	h := open(t, t.TempDir(), k, 64<<20)

	require.NoError(t, h.pub.Publish("audit.events", event(0)), "Kafka up, spool empty: straight through")
	k.setDown(true)
	err := h.pub.Publish("audit.events", event(1), event(2))
	require.ErrorIs(t, err, ErrSpooled)
	require.ErrorIs(t, err, kafka.ErrUnavailable, "the cause travels with it")
	k.setDown(false)
	// Kafka is back, but the spool holds records: new ones go behind them
	// (unless the drainer was quicker, in which case they go straight).
	for i := 3; i < 10; i++ {
		if err := h.pub.Publish("audit.events", event(i)); err != nil {
			require.ErrorIs(t, err, ErrSpooled)
		}
	}
	testenv.Await(t, 10*time.Second, "the spool drained and its segments removed", func() (bool, string) {
		return h.store.State() == State{State: "empty", MaxBytes: 64 << 20}, fmt.Sprintf("%d published, %+v", len(k.published()), h.store.State())
	})
	requireRecords(t, k.published(), "audit.events", 0, 10)
	require.GreaterOrEqual(t, testutil.ToFloat64(h.store.metrics.drained), 2.0)
	segs, err := filepath.Glob(filepath.Join(h.dir, "*"+segmentSuffix))
	require.NoError(t, err)
	require.Empty(t, segs, "drained segments are removed")
}

func TestRecordsGoBehindTheSpoolEvenWhenKafkaIsBack(t *testing.T) {
	k := newFakeKafka(true)
	dir := t.TempDir()
	h := open(t, dir, k, 64<<20)
	require.ErrorIs(t, h.pub.Publish("audit.events", event(0)), ErrSpooled)
	h.stop() // no drainer: Kafka being up must not let a record jump the queue
	k.setDown(false)

	store, err := Open(Config{Dir: dir, MaxBytes: 64 << 20}, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	pub := NewPublisher(k, store, zap.NewNop())
	require.ErrorIs(t, pub.Publish("audit.events", event(1)), ErrSpooled, "behind the record a previous process left")
	require.Empty(t, k.published())
	require.Equal(t, 2, store.State().Records)
	require.Equal(t, "spooling", store.State().State)
}

func TestRefusedRecordsAreNeverSpooled(t *testing.T) {
	k := newFakeKafka(true)
	k.err = &kafka.PublishError{Total: 1, Failed: 1, Refused: true, Err: errors.New("message too large")}
	h := open(t, t.TempDir(), k, 64<<20)
	err := h.pub.Publish("audit.events", event(0))
	require.ErrorIs(t, err, kafka.ErrUnavailable)
	require.NotErrorIs(t, err, ErrSpooled)
	require.False(t, h.store.Backlog())
}

func TestFullSpoolRefusesAndTakesAgainOnceDrained(t *testing.T) {
	k := newFakeKafka(true)
	h := open(t, t.TempDir(), k, 1<<20)
	big := func(i int) *message.Message {
		return kafka.NewMessage(fmt.Sprint(i), nil, make([]byte, 100<<10), nil)
	}
	var full error
	for i := 0; i < 20 && full == nil; i++ {
		if err := h.pub.Publish("audit.events", big(i)); !errors.Is(err, ErrSpooled) {
			full = err
		}
	}
	require.ErrorIs(t, full, ErrFull)
	require.NotErrorIs(t, full, ErrSpooled)
	// Smaller records fill what is left, until none fits.
	for i := 100; i < 300 && h.store.State().State != "full"; i++ {
		if err := h.pub.Publish("audit.events", kafka.NewMessage(fmt.Sprint(i), nil, make([]byte, 2<<10), nil)); !errors.Is(err, ErrSpooled) {
			require.ErrorIs(t, err, ErrFull)
		}
	}
	require.Equal(t, "full", h.store.State().State)
	held := h.store.State().Records
	require.GreaterOrEqual(t, held, 8, "about 1 MiB of 100 KiB records")

	k.setDown(false)
	testenv.Await(t, 10*time.Second, "the spool drained", func() (bool, string) {
		return !h.store.Backlog(), fmt.Sprintf("%+v", h.store.State())
	})
	require.Len(t, k.published(), held, "nothing dropped")
	require.NoError(t, h.pub.Publish("audit.events", big(99)))
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	k := newFakeKafka(true)
	h := open(t, t.TempDir(), k, 64<<20)
	h.stop() // keep the records: this is about writing them
	store, err := Open(Config{Dir: t.TempDir(), MaxBytes: 64 << 20}, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	pub := NewPublisher(k, store, zap.NewNop())
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				require.ErrorIs(t, pub.Publish("audit.events", event(w*each+i)), ErrSpooled)
			}
		})
	}
	wg.Wait()
	require.Equal(t, writers*each, store.State().Records)
	fsyncs := testutil.ToFloat64(store.metrics.fsyncs)
	require.Less(t, fsyncs, float64(writers*each)/2, "concurrent appends share fsyncs (%v for %d appends)", fsyncs, writers*each)
}

// TestRestartDrainsWhatAPreviousProcessLeft checks every kind of damage a
// crash or a disk can leave in the last segment: the intact records drain,
// the damage is reported, nothing else comes back.
func TestRestartDrainsWhatAPreviousProcessLeft(t *testing.T) {
	for _, c := range []struct {
		name    string
		harm    func(t *testing.T, path string)
		lost    int // records at most lost
		damaged bool
	}{
		{"clean", func(*testing.T, string) {}, 0, false},
		{"torn final write", func(t *testing.T, path string) {
			appendTo(t, path, []byte{0x12, 0x34, 0x56, 0x78, 0xff, 0x7f, 0x01, 'h', 'a', 'l', 'f'})
		}, 0, true},
		{"zero-filled tail", func(t *testing.T, path string) { appendTo(t, path, make([]byte, 4096)) }, 0, true},
		{"truncated", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, fi.Size()-40))
		}, 1, true},
		{"corrupted in the middle", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			for i := len(b) / 2; i < len(b)/2+16; i++ {
				b[i] ^= 0x5a
			}
			require.NoError(t, os.WriteFile(path, b, 0o600))
		}, oneBlock(), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 300
			dir := t.TempDir()
			k := newFakeKafka(true)
			h := open(t, dir, k, 64<<20)
			for i := range n {
				require.ErrorIs(t, h.pub.Publish("audit.events", event(i)), ErrSpooled)
			}
			h.stop()
			segs, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
			require.NoError(t, err)
			require.NotEmpty(t, segs)
			c.harm(t, segs[len(segs)-1])

			k.setDown(false)
			h = open(t, dir, k, 64<<20)
			testenv.Await(t, 10*time.Second, "the spool drained", func() (bool, string) {
				return !h.store.Backlog(), fmt.Sprintf("%+v", h.store.State())
			})
			got := k.published()
			require.GreaterOrEqual(t, len(got), n-c.lost)
			seen := map[string]bool{}
			for _, p := range got {
				var i int
				_, err := fmt.Sscanf(p.msg.UUID, "id-%05d", &i)
				require.NoError(t, err, "only records that were published come back")
				requireRecords(t, []published{p}, "audit.events", i, i+1)
				require.False(t, seen[p.msg.UUID], "each once")
				seen[p.msg.UUID] = true
			}
			damaged := testutil.ToFloat64(h.store.metrics.damaged)
			if c.damaged {
				require.Positive(t, damaged, "the damage is counted")
				require.NotZero(t, h.logs.FilterMessageSnippet("damaged part").Len(), "and logged")
			} else {
				require.Zero(t, damaged)
				require.Len(t, got, n)
			}
		})
	}
}

// oneBlock is how many test records a journal block holds, at most: what
// damage inside one block can cost.
func oneBlock() int {
	return blockSize/len(encodeRecord("audit.events", event(0), time.Now())) + 2
}

func appendTo(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, errors.Join(err, f.Close()))
}

func TestUnwritableSpoolAnswersWithItsError(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notADir, nil, 0o600))
	store, err := Open(Config{Dir: notADir, MaxBytes: 64 << 20}, zap.NewNop(), prometheus.NewRegistry())
	require.ErrorIs(t, err, ErrUnwritable)
	defer func() { require.NoError(t, store.Close()) }()
	k := newFakeKafka(false)
	pub := NewPublisher(k, store, zap.NewNop())
	require.NoError(t, pub.Publish("audit.events", event(0)), "Kafka still takes records")
	k.setDown(true)
	err = pub.Publish("audit.events", event(1))
	require.ErrorIs(t, err, ErrUnwritable)
	require.ErrorIs(t, err, kafka.ErrUnavailable)
	require.NotErrorIs(t, err, ErrSpooled)
	require.Equal(t, "unavailable", store.State().State)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, pub.Run(ctx), "the drainer of an unusable spool waits for the end")
}

func TestSecondProcessCannotShareTheDirectory(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(Config{Dir: dir, MaxBytes: 64 << 20}, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, first.Close()) }()
	second, err := Open(Config{Dir: dir, MaxBytes: 64 << 20}, zap.NewNop(), prometheus.NewRegistry())
	require.ErrorIs(t, err, ErrUnwritable)
	require.ErrorContains(t, err, "in use by another process")
	require.NoError(t, second.Close())
}

func TestRecordRoundTrip(t *testing.T) {
	for _, m := range []*message.Message{
		event(1),
		kafka.NewMessage("", nil, nil, nil),
		{UUID: "x", Payload: []byte("v"), Metadata: message.Metadata{"a": "", "b": "2"}},
	} {
		at := time.Unix(1700000000, 123456789)
		e, err := decodeRecord(encodeRecord("t", m, at))
		require.NoError(t, err)
		require.Equal(t, "t", e.topic)
		require.Equal(t, at, e.spooledAt)
		require.Equal(t, m.UUID, e.msg.UUID)
		require.Equal(t, string(m.Payload), string(e.msg.Payload))
		if len(m.Metadata) == 0 {
			require.Empty(t, e.msg.Metadata)
		} else {
			require.Equal(t, m.Metadata, e.msg.Metadata)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {recordVersion}, append(encodeRecord("t", event(1), time.Now()), 0)} {
		_, err := decodeRecord(bad)
		require.ErrorIs(t, err, errBadRecord)
	}
}
