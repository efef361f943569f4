package lifecycle

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeStore answers as the store would, one run at a time.
type fakeStore struct {
	mu         sync.Mutex
	runs       []store.RetentionRun
	runErr     error
	unrecorded []store.DropRecord
	ahead      int
	days       []int
	ran        chan struct{}
}

func (f *fakeStore) EnsurePartitionsAhead(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ahead++
	return nil
}

func (f *fakeStore) RunRetention(_ context.Context, days int, newID func() uuid.UUID) (store.RetentionRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.days = append(f.days, days)
	if f.ran != nil {
		defer func() { f.ran <- struct{}{} }()
	}
	if len(f.runs) == 0 {
		return store.RetentionRun{}, f.runErr
	}
	run := f.runs[0]
	f.runs = f.runs[1:]
	for i := range run.Outcomes {
		if run.Outcomes[i].Outcome == store.RetentionDropped {
			run.Outcomes[i].EventID = newID()
		}
	}
	return run, f.runErr
}

func (f *fakeStore) UnrecordedDrops(context.Context, time.Duration) ([]store.DropRecord, error) {
	return f.unrecorded, nil
}

type fakeRecorder struct {
	actions []selfaudit.Action
	err     error
}

func (r *fakeRecorder) Record(_ context.Context, actions ...selfaudit.Action) error {
	if r.err != nil {
		return r.err
	}
	r.actions = append(r.actions, actions...)
	return nil
}

func newMaintainer(t *testing.T, db *fakeStore, rec *fakeRecorder) (*Maintainer, *prometheus.Registry, *observer.ObservedLogs) {
	t.Helper()
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.InfoLevel)
	m, err := New(Config{Interval: time.Hour, RetentionDays: 365}, db, rec, zap.New(core), reg)
	require.NoError(t, err)
	return m, reg, logs
}

var (
	start = time.Date(2022, 3, 1, 0, 0, 0, 0, time.UTC)
	end   = start.AddDate(0, 1, 0)
)

// TestReport: a drop and a held partition are logged, counted and recorded
// as the system's events, the drop under the id its bookkeeping keeps.
func TestReport(t *testing.T) {
	db := &fakeStore{runs: []store.RetentionRun{{Checked: 4, Outcomes: []store.PartitionOutcome{
		{Partition: "audit_events_p202203", Start: start, End: end, Outcome: store.RetentionDropped, Events: 42},
		{Partition: "audit_events_p202104", Start: start.AddDate(-1, 1, 0), End: end.AddDate(-1, 1, 0), Outcome: store.RetentionHeld,
			Held: []string{"case-1", "case-2"}},
	}}}}
	rec := &fakeRecorder{}
	m, reg, logs := newMaintainer(t, db, rec)
	require.NoError(t, m.RunOnce(t.Context()))

	require.Equal(t, []int{365}, db.days)
	require.Equal(t, 1, db.ahead, "partitions ahead are kept too")
	require.Len(t, rec.actions, 2)
	drop, held := rec.actions[0], rec.actions[1]
	require.Equal(t, selfaudit.TypePartitionDropped, drop.Type)
	require.Equal(t, selfaudit.RetentionChain, drop.Chain)
	require.Equal(t, "audit_events_p202203", drop.ResourceID)
	require.NotEqual(t, uuid.Nil, drop.ID)
	require.Equal(t, map[string]any{"partition": "audit_events_p202203", "period_start": start, "period_end": end,
		"events": int64(42), "retention_days": 365}, drop.Data)
	require.Equal(t, selfaudit.TypePartitionHeld, held.Type)
	require.Equal(t, []string{"case-1", "case-2"}, held.Data.(map[string]any)["held_correlation_ids"])

	require.Equal(t, 1.0, value(t, m.dropped))
	require.Equal(t, 1.0, value(t, m.held))
	require.Equal(t, 42.0, value(t, m.droppedEvents))
	require.Equal(t, 1.0, value(t, m.runs.WithLabelValues(runOK)))
	require.Positive(t, value(t, m.lastRun))
	require.Equal(t, 1, logs.FilterMessage("retention dropped partition").FilterField(zap.Int64("events", 42)).Len())
	require.Equal(t, 1, logs.FilterMessage("retention kept partition under legal hold").Len())
	families, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	require.Subset(t, names, []string{"auditstream_retention_partitions_dropped_total", "auditstream_retention_partitions_held_total",
		"auditstream_retention_events_dropped_total", "auditstream_maintenance_runs_total",
		"auditstream_retention_events_unrecorded_total", "auditstream_maintenance_last_success_timestamp_seconds"})
}

// value reads a counter or gauge.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestHeldListIsBounded: a partition held by a great many correlation ids
// lists the first ones and the count.
func TestHeldListIsBounded(t *testing.T) {
	many := make([]string, 500)
	for i := range many {
		many[i] = uuid.NewString()
	}
	db := &fakeStore{runs: []store.RetentionRun{{Outcomes: []store.PartitionOutcome{
		{Partition: "audit_events_p202203", Start: start, End: end, Outcome: store.RetentionHeld, Held: many}}}}}
	rec := &fakeRecorder{}
	m, _, _ := newMaintainer(t, db, rec)
	require.NoError(t, m.RunOnce(t.Context()))
	data := rec.actions[0].Data.(map[string]any)
	require.Len(t, data["held_correlation_ids"], maxHeldListed)
	require.Equal(t, 500, data["held_total"])
}

// TestUnpublishedDrops: a drop whose event Kafka did not take is counted
// and fails the run; an earlier drop whose event is missing is published
// again under its own id and time.
func TestUnpublishedDrops(t *testing.T) {
	earlier := store.DropRecord{Partition: "audit_events_p201901", Start: start, End: end, DroppedAt: time.Now().Add(-time.Hour),
		Events: 7, DefaultDays: 400, EventID: uuid.New()}
	db := &fakeStore{runs: []store.RetentionRun{{Outcomes: []store.PartitionOutcome{
		{Partition: "audit_events_p202203", Start: start, End: end, Outcome: store.RetentionDropped, Events: 1}}}},
		unrecorded: []store.DropRecord{earlier}}
	rec := &fakeRecorder{err: errors.New("kafka down")}
	m, _, logs := newMaintainer(t, db, rec)
	require.ErrorContains(t, m.RunOnce(t.Context()), "kafka down")
	require.Equal(t, 2.0, value(t, m.unrecorded), "the earlier one and this run's")
	require.Equal(t, 1.0, value(t, m.runs.WithLabelValues(runFailed)))
	require.Equal(t, 1, logs.FilterMessage("retention audit event not published").Len())

	rec.err = nil
	require.NoError(t, m.RunOnce(t.Context()))
	require.Len(t, rec.actions, 1)
	again := rec.actions[0]
	require.Equal(t, earlier.EventID, again.ID)
	require.Equal(t, earlier.DroppedAt, again.At)
	require.Equal(t, 400, again.Data.(map[string]any)["retention_days"], "the retention the drop applied")
}

// TestSkipped: another writer ran retention; the run counts as skipped.
func TestSkipped(t *testing.T) {
	db := &fakeStore{runs: []store.RetentionRun{{Skipped: true}}}
	m, _, _ := newMaintainer(t, db, &fakeRecorder{})
	require.NoError(t, m.RunOnce(t.Context()))
	require.Equal(t, 1.0, value(t, m.runs.WithLabelValues(runSkipped)))
}

// TestRunRetriesSooner: a failed run is tried again before the interval,
// and Run returns when its context ends.
func TestRunRetriesSooner(t *testing.T) {
	db := &fakeStore{runErr: errors.New("database down"), ran: make(chan struct{})}
	reg := prometheus.NewRegistry()
	m, err := New(Config{Interval: 500 * time.Millisecond, RetentionDays: 30}, db, &fakeRecorder{}, zap.NewNop(), reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	for range 2 {
		select {
		case <-db.ran:
		case <-time.After(10 * time.Second):
			t.Fatal("no run")
		}
	}
	cancel()
	require.NoError(t, <-done)
	require.GreaterOrEqual(t, value(t, m.runs.WithLabelValues(runFailed)), 2.0)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, Config{Interval: time.Second, RetentionDays: 1}.Validate())
	require.NoError(t, Config{Interval: time.Hour, RetentionDays: 2555}.Validate())
	for _, c := range []Config{{Interval: 0, RetentionDays: 30}, {Interval: time.Hour, RetentionDays: 0},
		{Interval: time.Hour, RetentionDays: 2556}} {
		require.Error(t, c.Validate(), "%+v", c)
	}
}
