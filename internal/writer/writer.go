// Package writer is the stage that moves records from Kafka into
// PostgreSQL: it consumes audit.events and audit.notifications as one
// consumer group, decodes and validates each record with the API's rules,
// gathers records into batches flushed on size or age, stores each batch in
// one COPY transaction, dead-letters what cannot be stored, and only then
// marks the offsets.
//
// It consumes through internal/kafka's consumer group (sarama's) rather
// than watermill-kafka's subscriber (v3.1.4): that hands over one message
// per partition and waits for its ack before the next (batch consumption
// is only in the unmerged watermill-kafka PR #29), so it cannot gather a
// batch while keeping at-least-once delivery (acking early would lose
// records on a crash). Dead letters go out as the API's records do,
// through watermill's message.Publisher (kafka.Publisher), all of a batch
// in one call.
//
// Error classes (SPEC 5), decided once by the store on the SQLSTATE and
// carried on its errors (errclass):
//   - poison (bad JSON, failed validation, a row-level data error) and
//     failed (refused for a reason that may clear): the record goes to the
//     DLQ; the rest of its batch is stored, the culprits found by splitting
//     the batch in halves;
//   - outage (database unreachable, timeouts, serialization failures):
//     nothing is dead-lettered; fetching pauses and the batch is retried
//     with capped exponential backoff until the database is back;
//   - a record already stored is counted as a duplicate and skipped; one
//     whose event_id is stored with other content (the store compares
//     content digests) is a conflict: dead-lettered with both digests,
//     the stored event kept as it is.
//
// Offsets are marked only after the batch's transaction has committed and
// its dead letters are acknowledged by Kafka; a crash at any point replays
// unmarked records, which de-duplication absorbs.
//
// The hash chain (SPEC 9.1) is the store's part of that transaction: with
// integrity keys, the events a batch stores are linked to their
// correlation_id's chain in batch order, so a batch split to isolate a
// culprit, or abandoned and redelivered, leaves no gap and no fork.
package writer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/backoff"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/provenance"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// rowStore stores a batch in one transaction, skipping what is already
// stored. Its errors carry their class (errclass.Of).
type rowStore interface {
	Write(ctx context.Context, events []audit.Event, notifications []audit.Notification) (store.WriteResult, error)
}

// deadLetterPublisher is the part of watermill's message.Publisher the
// writer uses, as the API does: it returns once Kafka has acknowledged
// every message of a call (kafka.Publisher).
type deadLetterPublisher interface {
	Publish(topic string, messages ...*message.Message) error
}

// Defaults of Config fields left zero.
const (
	// DefaultGroupStallTimeout: well above a rebalance (members have the
	// consumer's 30 s rebalance timeout to end their sessions and join
	// again), well below the time a backlog takes to matter.
	DefaultGroupStallTimeout = time.Minute
	// DefaultGroupPollInterval: offsets move every second under load; a
	// scrape every 15 to 30 s needs no fresher figures.
	DefaultGroupPollInterval = 15 * time.Second
	// DefaultFlushLanes: while one batch's transaction waits for
	// PostgreSQL (its COPY, its commit's WAL flush), others are stored on
	// connections of their own, and their commits share WAL flushes. On
	// the 2-core bench machine with fsync on, the writer drained at 0.35x
	// raw COPY with one lane, 0.70x with two and 0.89x with four.
	DefaultFlushLanes = 4
)

// Config is the writer's behaviour.
type Config struct {
	Group string
	// InstanceID makes the writer a static member of Group (KIP-345): a
	// writer restarted under the same id within SessionTimeout gets its
	// partitions back at once, without a rebalance. Empty: a dynamic
	// member, whose restart waits for its old session to expire.
	InstanceID string
	// SessionTimeout is how long the group waits for a writer that went
	// silent (a crash) before its partitions go to the others; zero is
	// sarama's default.
	SessionTimeout     time.Duration
	EventsTopic        string
	NotificationsTopic string
	DLQTopic           string
	BatchSize          int
	BatchAge           time.Duration
	// FlushLanes is how many batches are stored at once, each on its own
	// connection, over disjoint sets of the session's partitions; zero is
	// DefaultFlushLanes.
	FlushLanes int
	MaxBackoff time.Duration
	// WriteTimeout bounds one transaction, including the last flush of a
	// session (rebalance or shutdown), which gets a single attempt.
	WriteTimeout time.Duration
	// GroupStallTimeout is how long the writer may be without a consumer
	// group session while records wait before Check fails; GroupPollInterval
	// is how often it reads the group's offsets (group.go). Zero: the
	// defaults above.
	GroupStallTimeout time.Duration
	GroupPollInterval time.Duration
	Rules             audit.Rules
	// Submitters verify the principal the API signed on each record
	// (SOURCE_KEYS_FILE); nil verifies none, and every record is stored
	// with an unverified kafka:<name> (SOURCE_SIGNING_DISABLED).
	Submitters submitters
	// Tracing, when enabled, gives every batch a span linked to the traces
	// of its records; nil is off.
	Tracing *telemetry.Tracing
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" || c.EventsTopic == "" || c.NotificationsTopic == "" || c.DLQTopic == "" {
		errs = append(errs, errors.New("writer: group and topics must be set"))
	}
	if c.BatchSize < 1 || c.BatchAge <= 0 || c.FlushLanes < 1 {
		errs = append(errs, errors.New("writer: batch size and age, and flush lanes, must be positive"))
	}
	if c.MaxBackoff <= 0 || c.WriteTimeout <= 0 || c.GroupStallTimeout <= 0 || c.GroupPollInterval <= 0 {
		errs = append(errs, errors.New("writer: backoff, timeouts and intervals must be positive"))
	}
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Writer consumes, batches and stores. Run it once.
type Writer struct {
	cfg      Config
	consumer *kafka.Consumer
	brokers  []string // for logs
	rows     rowStore
	dlq      deadLetterPublisher
	log      *zap.Logger
	metrics  *metrics
	now      func() time.Time
	// tracer is a no-op one when tracing is off, and propagator nil.
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator

	group  atomic.Pointer[kafka.ConsumerGroup]
	outage atomic.Bool
	// paused is whether the writer has paused fetching; it is separate from
	// outage because a new session resumes fetching while the outage lasts
	// (see resumeForSession).
	paused atomic.Bool
	// groupState is what Check knows of the consumer group (group.go).
	groupState
}

// New checks the configuration; it does not connect.
func New(cfg Config, kcfg kafka.Config, st rowStore, dlq deadLetterPublisher, log *zap.Logger, m *Metrics) (*Writer, error) {
	if cfg.GroupStallTimeout == 0 {
		cfg.GroupStallTimeout = DefaultGroupStallTimeout
	}
	if cfg.GroupPollInterval == 0 {
		cfg.GroupPollInterval = DefaultGroupPollInterval
	}
	if cfg.FlushLanes == 0 {
		cfg.FlushLanes = DefaultFlushLanes
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	consumer, err := kafka.NewConsumer(kcfg, cfg.Group, kafka.Membership{InstanceID: cfg.InstanceID, SessionTimeout: cfg.SessionTimeout})
	if err != nil {
		return nil, err
	}
	if cfg.Submitters == nil {
		cfg.Submitters = (*provenance.Keys)(nil)
	}
	// The writer reads the system's own events too, and decides on their
	// sender (decode); it is not a setting.
	cfg.Rules.AcceptSystemCategory = true
	w := &Writer{cfg: cfg, consumer: consumer, brokers: kcfg.Brokers, rows: st, dlq: dlq, log: log, metrics: m.m, now: time.Now,
		tracer: cfg.Tracing.Tracer("github.com/auditstream/auditstream/internal/writer")}
	if cfg.Tracing.Enabled() {
		w.propagator = cfg.Tracing.Propagator()
	}
	w.groupState.init(w.now())
	return w, nil
}

// Run joins the consumer group and consumes until ctx ends; then the last
// batch is flushed, its offsets committed and the group left.
func (w *Writer) Run(ctx context.Context) error {
	group, err := w.connect(ctx)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	w.group.Store(group)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		w.watchGroup(watchCtx, group)
	}()
	defer func() {
		stopWatch()
		<-watched
		if err := group.Close(); err != nil {
			w.log.Error("close consumer group", zap.Error(err))
		}
	}()
	go func() {
		for err := range group.Errors() {
			w.log.Warn("consumer group error", zap.Error(err))
		}
	}()

	h := &handler{w: w}
	topics := []string{w.cfg.EventsTopic, w.cfg.NotificationsTopic}
	retry := backoff.Writer(w.cfg.MaxBackoff).New()
	for ctx.Err() == nil {
		// Consume returns at every rebalance; the loop rejoins.
		if err := group.Consume(ctx, topics, h); err != nil {
			if errors.Is(err, kafka.ErrClosedConsumerGroup) {
				return nil
			}
			if errors.Is(err, kafka.ErrFencedInstanceID) {
				// Joining again would fence the other member, which
				// would fence this one in turn: exit, and say why.
				return fmt.Errorf("another writer joined consumer group %s with instance id %q (WRITER_INSTANCE_ID): each writer needs its own: %w",
					w.cfg.Group, w.cfg.InstanceID, err)
			}
			w.log.Warn("consume failed, rejoining", zap.Duration("backoff", retry.Next()), zap.Error(err))
			if !retry.Wait(ctx) {
				break
			}
			continue
		}
		retry.Reset()
	}
	w.log.Info("writer stopping")
	return nil
}

func (w *Writer) connect(ctx context.Context) (*kafka.ConsumerGroup, error) {
	retry := backoff.Writer(w.cfg.MaxBackoff).New()
	for attempt := 1; ; attempt++ {
		group, err := w.consumer.Join()
		if err == nil {
			w.log.Info("consumer group client connected", zap.String("group", w.cfg.Group), zap.Int("attempt", attempt))
			return group, nil
		}
		w.log.Warn("kafka unreachable, retrying", zap.Strings("brokers", w.brokers),
			zap.Int("attempt", attempt), zap.Duration("backoff", retry.Next()), zap.Error(err))
		if !retry.Wait(ctx) {
			return nil, fmt.Errorf("connect consumer group: %w", ctx.Err())
		}
	}
}

// Check is the health probe: it fails while PostgreSQL is unreachable and
// the writer is holding a batch, retrying, and when the writer has had no
// consumer group session for GroupStallTimeout while records wait.
func (w *Writer) Check(context.Context) error {
	if w.outage.Load() {
		return errors.New("database outage: writer paused, retrying with backoff")
	}
	return w.stalled(w.now())
}

// setOutage records the outage state: metric and log on a change, and
// pausing or resuming the fetchers so Kafka is the buffer while the
// database is away.
func (w *Writer) setOutage(on bool, err error) {
	if w.outage.Swap(on) != on {
		if on {
			w.metrics.outage.Set(1)
			w.metrics.outagesTotal.Inc()
			w.log.Error("database outage: pausing consumption and retrying", zap.Error(err))
		} else {
			w.metrics.outage.Set(0)
			w.log.Info("database back: resuming consumption")
		}
	}
	w.setPaused(on)
}

// setPaused pauses or resumes fetching of every partition the writer owns.
func (w *Writer) setPaused(on bool) {
	if w.paused.Swap(on) == on {
		return
	}
	group := w.group.Load()
	if group == nil {
		return
	}
	if on {
		group.PauseAll()
	} else {
		group.ResumeAll()
	}
}

// resumeForSession runs as a session starts, before its partitions are
// fetched. sarama keeps a partition's pause across rebalances, so a session
// that ended during an outage (a rebalance, another writer joining) would
// start the next one paused: no record would arrive, no write would find
// the database back, and the partitions would stay paused for good. Fetch
// again; the first flush pauses once more if the outage lasts, and the
// outage gauge and Check keep reporting it until a write succeeds.
func (w *Writer) resumeForSession() {
	w.setPaused(false)
}
