// Package lifecycle is the writer's maintenance loop (SPEC 10). Every
// MAINTENANCE_INTERVAL, at once on start and then on that period, it
// keeps the partitions of the months ahead in place and applies
// retention: each monthly partition whose events are all past their
// retention (their own retention_days, else RETENTION_DAYS) and that no
// legal hold keeps is dropped whole, with its rows of the event-id
// register, by the database's retention function (internal/store). Of
// several writers one runs retention at a time; the others skip.
//
// What it does to the audit trail it records in the audit trail itself:
// each drop, and each partition a hold keeps, is logged, counted and
// published as an audit event of category auditstream (internal/selfaudit).
// A drop whose event did not reach Kafka is published again, with its
// id, on a later run, for as long as retention_drops remembers it.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/backoff"
	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/store"
)

// Defaults of the settings (config.Writer).
const (
	// DefaultInterval: hourly is far more often than months change or
	// expire, and a run that finds nothing to do costs one index probe
	// per old partition.
	DefaultInterval = time.Hour
	// DefaultRetentionDays is seven years, the usual audit requirement.
	DefaultRetentionDays = audit.MaxRetentionDays
)

// retryInterval: after a failed run (database down) the next comes this
// soon, or at the interval if that is shorter.
const retryInterval = time.Minute

// republishWithin is how far back drops whose audit event is missing are
// published again: a Kafka outage of a week is long past any alert.
const republishWithin = 7 * 24 * time.Hour

// maxHeldListed bounds the correlation ids a "partition held" event lists,
// keeping it far below event_data's size limit; the count is always there.
const maxHeldListed = 100

// Config is the loop's behaviour.
type Config struct {
	Interval time.Duration
	// RetentionDays applies to events without their own retention_days.
	RetentionDays int
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, errors.New("lifecycle: interval must be positive"))
	}
	if c.RetentionDays < audit.MinRetentionDays || c.RetentionDays > audit.MaxRetentionDays {
		errs = append(errs, fmt.Errorf("lifecycle: retention days must be %d to %d, got %d",
			audit.MinRetentionDays, audit.MaxRetentionDays, c.RetentionDays))
	}
	return errors.Join(errs...)
}

// partitionStore is the database side of maintenance.
type partitionStore interface {
	EnsurePartitionsAhead(ctx context.Context) error
	RunRetention(ctx context.Context, defaultDays int, newID func() uuid.UUID) (store.RetentionRun, error)
	UnrecordedDrops(ctx context.Context, within time.Duration) ([]store.DropRecord, error)
}

// recorder publishes auditstream's own audit events.
type recorder interface {
	Record(ctx context.Context, actions ...selfaudit.Action) error
}

// Maintainer runs the loop. Run it once.
type Maintainer struct {
	cfg Config
	db  partitionStore
	rec recorder
	log *zap.Logger

	dropped, held, droppedEvents prometheus.Counter
	runs                         *prometheus.CounterVec
	unrecorded                   prometheus.Counter
	lastRun                      prometheus.Gauge
}

// Run results, the label of auditstream_maintenance_runs_total.
const (
	runOK      = "ok"
	runSkipped = "skipped"
	runFailed  = "failed"
)

// New checks the configuration and registers the metrics on reg.
func New(cfg Config, db partitionStore, rec recorder, log *zap.Logger, reg prometheus.Registerer) (*Maintainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	m := &Maintainer{
		cfg: cfg, db: db, rec: rec, log: log,
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_retention_partitions_dropped_total",
			Help: "Monthly audit_events partitions dropped by retention, every event in them past its retention.",
		}),
		held: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_retention_partitions_held_total",
			Help: "Times a partition past its retention was kept because a legal hold covers some of its events (once per maintenance run).",
		}),
		droppedEvents: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_retention_events_dropped_total",
			Help: "Audit events removed with the partitions retention dropped.",
		}),
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_maintenance_runs_total",
			Help: "Maintenance runs (partitions ahead, retention) by result: ok, skipped (another writer ran retention), failed.",
		}, []string{"result"}),
		unrecorded: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_retention_events_unrecorded_total",
			Help: "Audit events about retention (category auditstream) that could not be published when due; drops are published again on a later run.",
		}),
		lastRun: f.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_maintenance_last_success_timestamp_seconds",
			Help: "When the last maintenance run completed without error (Unix time).",
		}),
	}
	for _, r := range []string{runOK, runSkipped, runFailed} {
		m.runs.WithLabelValues(r) // present at 0, so rates and alerts work from the start
	}
	return m, nil
}

// Run maintains at once, then every interval, until ctx ends (then it
// returns nil). A failed run is logged and tried again sooner; it never
// stops the loop.
func (m *Maintainer) Run(ctx context.Context) error {
	return backoff.Every(ctx, m.cfg.Interval, min(m.cfg.Interval, retryInterval), m.RunOnce, func(err error, wait time.Duration) {
		m.log.Warn("maintenance run failed", zap.Error(err), zap.Duration("retry_in", wait))
	})
}

// RunOnce is one maintenance run: partitions ahead, drops whose audit event
// is missing, then retention.
func (m *Maintainer) RunOnce(ctx context.Context) error {
	errs := []error{m.db.EnsurePartitionsAhead(ctx)}
	errs = append(errs, m.republish(ctx))
	run, err := m.db.RunRetention(ctx, m.cfg.RetentionDays, audit.NewEventID)
	errs = append(errs, err)
	if run.Skipped {
		m.log.Debug("retention skipped: another writer holds the retention lock")
	}
	for _, o := range run.Outcomes {
		errs = append(errs, m.report(ctx, o))
	}
	err = errors.Join(errs...)
	switch {
	case err != nil:
		m.runs.WithLabelValues(runFailed).Inc()
	case run.Skipped:
		m.runs.WithLabelValues(runSkipped).Inc()
		m.lastRun.SetToCurrentTime()
	default:
		m.runs.WithLabelValues(runOK).Inc()
		m.lastRun.SetToCurrentTime()
		m.log.Debug("maintenance run done", zap.Int("partitions_checked", run.Checked), zap.Int("outcomes", len(run.Outcomes)))
	}
	return err
}

// report logs, counts and records one partition retention dropped or a
// hold kept.
func (m *Maintainer) report(ctx context.Context, o store.PartitionOutcome) error {
	fields := []zap.Field{zap.String("partition", o.Partition), zap.Time("period_start", o.Start), zap.Time("period_end", o.End)}
	var action selfaudit.Action
	switch o.Outcome {
	case store.RetentionDropped:
		m.dropped.Inc()
		m.droppedEvents.Add(float64(o.Events))
		m.log.Info("retention dropped partition", append(fields, zap.Int64("events", o.Events),
			zap.Int("retention_days", m.cfg.RetentionDays), zap.Stringer("event_id", o.EventID))...)
		action = dropAction(store.DropRecord{Partition: o.Partition, Start: o.Start, End: o.End, Events: o.Events,
			DefaultDays: m.cfg.RetentionDays, EventID: o.EventID})
	case store.RetentionHeld:
		m.held.Inc()
		m.log.Info("retention kept partition under legal hold", append(fields, zap.Strings("held_correlation_ids", o.Held))...)
		listed := o.Held[:min(len(o.Held), maxHeldListed)]
		action = selfaudit.Action{
			Type: selfaudit.TypePartitionHeld, Action: "hold", Chain: selfaudit.RetentionChain,
			ResourceType: "partition", ResourceID: o.Partition,
			Data: map[string]any{"partition": o.Partition, "period_start": o.Start, "period_end": o.End,
				"held_correlation_ids": listed, "held_total": len(o.Held), "retention_days": m.cfg.RetentionDays},
		}
	default:
		return nil
	}
	if err := m.rec.Record(ctx, action); err != nil {
		m.unrecorded.Inc()
		m.log.Error("retention audit event not published", append(fields, zap.Error(err))...)
		return err
	}
	return nil
}

// dropAction is the audit event of a drop; its id is the one
// retention_drops keeps, so every publication of it is one event.
func dropAction(d store.DropRecord) selfaudit.Action {
	return selfaudit.Action{
		ID: d.EventID, At: d.DroppedAt, Type: selfaudit.TypePartitionDropped, Action: "drop", Chain: selfaudit.RetentionChain,
		ResourceType: "partition", ResourceID: d.Partition,
		Data: map[string]any{"partition": d.Partition, "period_start": d.Start, "period_end": d.End, "events": d.Events,
			"retention_days": d.DefaultDays},
	}
}

// republish publishes again the audit events of recent drops that are not
// stored.
func (m *Maintainer) republish(ctx context.Context) error {
	drops, err := m.db.UnrecordedDrops(ctx, republishWithin)
	if err != nil || len(drops) == 0 {
		return err
	}
	actions := make([]selfaudit.Action, len(drops))
	for i, d := range drops {
		actions[i] = dropAction(d)
	}
	if err := m.rec.Record(ctx, actions...); err != nil {
		m.unrecorded.Add(float64(len(drops)))
		return fmt.Errorf("publish the audit events of %d earlier drops again: %w", len(drops), err)
	}
	m.log.Warn("published the audit events of earlier retention drops again", zap.Int("drops", len(drops)))
	return nil
}
