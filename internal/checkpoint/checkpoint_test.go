package checkpoint

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

func TestMain(m *testing.M) { os.Exit(testmain.Main(m, "checkpoint tests", 0, nil)) }

// fakeStore is the table as RecordCheckpoints keeps it: pending heads,
// checkpoints with their published flag.
type fakeStore struct {
	mu        sync.Mutex
	pending   []integrity.CheckpointHead
	recorded  []store.StoredCheckpoint
	published map[int64]bool
	last      store.PreviousCheckpoint
	failNext  error
}

func (f *fakeStore) RecordCheckpoints(_ context.Context, maxHeads int, sign store.CheckpointSigner) ([]*integrity.SignedCheckpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return nil, err
	}
	if len(f.pending) == 0 {
		return nil, nil
	}
	n := min(maxHeads, len(f.pending))
	cps, err := sign(f.last, f.pending[:n])
	if err != nil {
		return nil, err
	}
	f.pending = f.pending[n:]
	for _, c := range cps {
		f.recorded = append(f.recorded, store.StoredCheckpoint{ID: c.ID, CreatedAt: c.Time, Document: c.Document})
		f.last = store.PreviousCheckpoint{ID: c.ID, Hash: c.Hash}
	}
	return cps, nil
}

func (f *fakeStore) UnpublishedCheckpoints(context.Context) ([]store.StoredCheckpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.StoredCheckpoint
	for _, c := range f.recorded {
		if !f.published[c.ID] {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeStore) MarkCheckpointsPublished(_ context.Context, ids []int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.published[id] = true
	}
	return nil
}

func (f *fakeStore) CheckpointLag(context.Context) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) > 0 || len(f.recorded) > len(f.published) {
		return time.Minute, nil
	}
	return 0, nil
}

// fakeKafka keeps what Kafka acknowledged; down makes it refuse.
type fakeKafka struct {
	mu      sync.Mutex
	down    bool
	records []kafka.Record
}

func (k *fakeKafka) Publish(_ context.Context, records []kafka.Record) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.down {
		return errors.New("kafka unavailable")
	}
	k.records = append(k.records, records...)
	return nil
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.Write(&out))
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

func heads(ids ...string) []integrity.CheckpointHead {
	out := make([]integrity.CheckpointHead, len(ids))
	for i, id := range ids {
		out[i] = integrity.CheckpointHead{CorrelationID: id, Head: integrity.Head{Seq: 1, Hash: make([]byte, 32)}}
	}
	return out
}

func newPublisher(t *testing.T, st *fakeStore, k *fakeKafka, maxHeads int) (*Publisher, *integrity.Signer) {
	t.Helper()
	priv, _ := integrity.GenerateSigningKey()
	signer, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	p, err := New(Config{Interval: time.Minute, Topic: "audit.checkpoints", Writer: "w-0", MaxHeads: maxHeads},
		st, k, signer, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	return p, signer
}

// TestCheckpointPublishesAndRepairs: a checkpoint goes to the table, then
// to Kafka keyed by its id, then is marked published; one Kafka refused
// stays recorded and unpublished, and the next checkpoint publishes it
// first, in id order.
func TestCheckpointPublishesAndRepairs(t *testing.T) {
	st := &fakeStore{pending: heads("a", "b"), published: map[int64]bool{}}
	k := &fakeKafka{}
	p, signer := newPublisher(t, st, k, 100)
	ctx := t.Context()

	require.NoError(t, p.Checkpoint(ctx))
	require.Len(t, k.records, 1)
	require.Equal(t, "audit.checkpoints", k.records[0].Topic)
	require.Equal(t, "1", string(k.records[0].Key))
	c, err := integrity.ParseCheckpoint(k.records[0].Value)
	require.NoError(t, err)
	require.NoError(t, c.Verify(signer.PublicKey()))
	require.Equal(t, "w-0", c.Writer)
	require.True(t, st.published[1])
	require.Zero(t, value(t, p.lag))

	// Kafka down: recorded, not published, counted, lagging.
	st.pending = heads("c")
	k.down = true
	require.Error(t, p.Checkpoint(ctx))
	require.Len(t, st.recorded, 2)
	require.False(t, st.published[2])
	require.Equal(t, 1.0, value(t, p.failures.WithLabelValues("publish")))
	require.Equal(t, 60.0, value(t, p.lag))

	// Back: the unpublished one first, then the new one.
	st.pending = heads("d")
	k.down = false
	require.NoError(t, p.Checkpoint(ctx))
	var ids []string
	for _, r := range k.records {
		ids = append(ids, string(r.Key))
	}
	require.Equal(t, []string{"1", "2", "3"}, ids)
	var prev *integrity.SignedCheckpoint
	for _, r := range k.records {
		c, err := integrity.ParseCheckpoint(r.Value)
		require.NoError(t, err)
		require.NoError(t, c.VerifyNext(prev))
		prev = c
	}
	require.Equal(t, 3.0, value(t, p.published))
	require.Equal(t, 4.0, value(t, p.heads))

	// A database failure is counted and returned; nothing is published.
	st.failNext = errors.New("database down")
	require.Error(t, p.Checkpoint(ctx))
	require.Equal(t, 1.0, value(t, p.failures.WithLabelValues("record")))
	require.Len(t, k.records, 3)
}

// TestCheckpointCoversEveryPendingHead: more pending heads than one
// transaction takes are covered by several in a row, in one call.
func TestCheckpointCoversEveryPendingHead(t *testing.T) {
	var ids []string
	for i := range 25 {
		ids = append(ids, "c-"+strconv.Itoa(100+i))
	}
	st := &fakeStore{pending: heads(ids...), published: map[int64]bool{}}
	k := &fakeKafka{}
	p, _ := newPublisher(t, st, k, 10)
	require.NoError(t, p.Checkpoint(t.Context()))
	require.Empty(t, st.pending)
	require.Len(t, k.records, 3)
	require.Equal(t, 25.0, value(t, p.heads))

	require.NoError(t, p.Checkpoint(t.Context()), "nothing moved: nothing to do")
	require.Len(t, k.records, 3)
}

// TestRunRepublishesAtStartAndStops: Run publishes what a previous run
// left unpublished before its first tick, and returns when ctx ends.
func TestRunRepublishesAtStartAndStops(t *testing.T) {
	st := &fakeStore{published: map[int64]bool{}, recorded: []store.StoredCheckpoint{{ID: 7, Document: []byte(`{}`)}}}
	k := &fakeKafka{}
	p, _ := newPublisher(t, st, k, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.published[7]
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, "7", string(k.records[0].Key))
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	priv, _ := integrity.GenerateSigningKey()
	signer, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	for _, cfg := range []Config{{Topic: "t"}, {Interval: time.Second}} {
		_, err := New(cfg, &fakeStore{}, &fakeKafka{}, signer, zap.NewNop(), prometheus.NewRegistry())
		require.Error(t, err)
	}
	_, err = New(Config{Interval: time.Second, Topic: "t"}, &fakeStore{}, &fakeKafka{}, nil, zap.NewNop(), prometheus.NewRegistry())
	require.Error(t, err)
}
