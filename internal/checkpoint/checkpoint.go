// Package checkpoint is the writer's loop that anchors the hash chains
// outside the database (SPEC 9.2): every interval that saw chain heads
// move, it signs a checkpoint of those heads (internal/integrity), records
// it in integrity_checkpoints and publishes it to the audit.checkpoints
// topic.
//
// One sequence for all writers: a checkpoint is recorded under a
// PostgreSQL advisory lock (store.RecordCheckpoints), which hands out the
// next id and the previous checkpoint's hash, so the writers' checkpoints
// chain to each other whichever writer publishes. The table is written
// first, in the transaction that marks the heads as covered; the topic
// second, keyed by the checkpoint id; published_at last. A crash between
// the two leaves a recorded, unpublished checkpoint, which the next tick
// of any writer (and every writer's start) publishes again: a repeat on
// the topic carries the same id and document, which a reader recognises.
package checkpoint

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
)

// DefaultMaxHeads bounds the heads one checkpoint transaction covers (and
// holds locked, and in memory): a busy minute of many distinct chains is
// covered in several transactions of this many, each short.
const DefaultMaxHeads = 20000

// checkpointStore is what the loop needs of the database.
type checkpointStore interface {
	RecordCheckpoints(ctx context.Context, maxHeads int, sign store.CheckpointSigner) ([]*integrity.SignedCheckpoint, error)
	UnpublishedCheckpoints(ctx context.Context) ([]store.StoredCheckpoint, error)
	MarkCheckpointsPublished(ctx context.Context, ids []int64) error
	CheckpointLag(ctx context.Context) (time.Duration, error)
}

// publisher returns once Kafka has acknowledged every record.
type publisher interface {
	Publish(ctx context.Context, records []kafka.Record) error
}

// Config is the loop's behaviour.
type Config struct {
	// Interval between checkpoints (CHECKPOINT_INTERVAL).
	Interval time.Duration
	// Topic receives the checkpoints (CHECKPOINTS_TOPIC).
	Topic string
	// Writer names this process in the checkpoints it publishes.
	Writer string
	// MaxHeads per transaction (default DefaultMaxHeads).
	MaxHeads int
}

// Publisher is the checkpoint loop of one writer.
type Publisher struct {
	cfg    Config
	store  checkpointStore
	kafka  publisher
	signer *integrity.Signer
	log    *zap.Logger
	now    func() time.Time

	published prometheus.Counter
	heads     prometheus.Counter
	failures  *prometheus.CounterVec
	lag       prometheus.Gauge
}

// New checks the configuration.
func New(cfg Config, st checkpointStore, pub publisher, signer *integrity.Signer, log *zap.Logger, reg prometheus.Registerer) (*Publisher, error) {
	if cfg.Interval <= 0 || cfg.Topic == "" || signer == nil {
		return nil, errors.New("checkpoint: interval, topic and signing key must be set")
	}
	if cfg.MaxHeads <= 0 {
		cfg.MaxHeads = DefaultMaxHeads
	}
	f := promauto.With(reg)
	p := &Publisher{
		cfg: cfg, store: st, kafka: pub, signer: signer, log: log, now: time.Now,
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_integrity_checkpoints_published_total",
			Help: "Signed checkpoints this writer published to the checkpoints topic (republished ones included).",
		}),
		heads: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_integrity_checkpoint_heads_total",
			Help: "Chain heads covered by the checkpoints this writer recorded.",
		}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_integrity_checkpoint_failures_total",
			Help: "Checkpoint attempts that failed, by stage: record (database) or publish (Kafka).",
		}, []string{"stage"}),
		lag: f.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_integrity_checkpoint_lag_seconds",
			Help: "How long the oldest chain head move has waited for a checkpoint that Kafka has acknowledged; 0 when every head is covered.",
		}),
	}
	// Both stages exported from the start, so an alert on a rise sees 0
	// first.
	p.failures.WithLabelValues("record")
	p.failures.WithLabelValues("publish")
	return p, nil
}

// Run checkpoints every interval until ctx ends (then it returns nil):
// first whatever a previous run recorded and did not publish, then the
// heads that moved. Failures are logged and counted; the next tick tries
// again.
func (p *Publisher) Run(ctx context.Context) error {
	p.log.Info("checkpoints", zap.Duration("interval", p.cfg.Interval), zap.String("topic", p.cfg.Topic),
		zap.String("public_key_sha256", integrity.KeyFingerprint(p.signer.PublicKey())))
	ticker := time.NewTicker(p.cfg.Interval)
	defer ticker.Stop()
	if err := p.republish(ctx); err != nil && ctx.Err() == nil {
		p.log.Warn("republishing checkpoints failed; the next tick retries", zap.Error(err))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if err := p.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("checkpoint failed; the next tick retries", zap.Error(err))
		}
	}
}

// Checkpoint publishes what is unpublished, then covers every pending head
// with new checkpoints and publishes them. The writer calls it once more
// after its last batch, so that a shutdown leaves nothing unanchored.
func (p *Publisher) Checkpoint(ctx context.Context) error {
	defer p.updateLag(ctx)
	if err := p.republish(ctx); err != nil {
		return err
	}
	for {
		cps, err := p.store.RecordCheckpoints(ctx, p.cfg.MaxHeads, p.sign)
		if err != nil {
			p.failures.WithLabelValues("record").Inc()
			return err
		}
		if len(cps) == 0 {
			return nil
		}
		stored := make([]store.StoredCheckpoint, len(cps))
		n := 0
		for i, c := range cps {
			stored[i] = store.StoredCheckpoint{ID: c.ID, CreatedAt: c.Time, Document: c.Document}
			n += len(c.Heads)
		}
		p.heads.Add(float64(n))
		if err := p.publish(ctx, stored); err != nil {
			return err
		}
		p.log.Info("checkpoint published", zap.Int64("first_id", cps[0].ID), zap.Int64("last_id", cps[len(cps)-1].ID),
			zap.Int("heads", n))
		if n < p.cfg.MaxHeads {
			return nil
		}
	}
}

func (p *Publisher) sign(prev store.PreviousCheckpoint, heads []integrity.CheckpointHead) ([]*integrity.SignedCheckpoint, error) {
	return integrity.SignCheckpoints(p.signer, p.cfg.Writer, p.now(), prev.ID, prev.Hash, heads)
}

// republish publishes the checkpoints recorded but not acknowledged.
func (p *Publisher) republish(ctx context.Context) error {
	cps, err := p.store.UnpublishedCheckpoints(ctx)
	if err != nil {
		p.failures.WithLabelValues("record").Inc()
		return err
	}
	if len(cps) == 0 {
		return nil
	}
	if err := p.publish(ctx, cps); err != nil {
		return err
	}
	p.log.Info("unpublished checkpoints published", zap.Int64("first_id", cps[0].ID), zap.Int("checkpoints", len(cps)))
	return nil
}

// publish sends checkpoints to the topic, in id order, and marks them
// published once Kafka has them.
func (p *Publisher) publish(ctx context.Context, cps []store.StoredCheckpoint) error {
	records := make([]kafka.Record, len(cps))
	ids := make([]int64, len(cps))
	for i, c := range cps {
		ids[i] = c.ID
		records[i] = kafka.Record{
			Topic: p.cfg.Topic, Key: []byte(strconv.FormatInt(c.ID, 10)), Value: c.Document,
			Headers: []kafka.Header{{Key: []byte(kafka.HeaderContentType), Value: []byte("application/json")}},
		}
	}
	if err := p.kafka.Publish(ctx, records); err != nil {
		p.failures.WithLabelValues("publish").Inc()
		return err
	}
	p.published.Add(float64(len(cps)))
	if err := p.store.MarkCheckpointsPublished(ctx, ids); err != nil {
		// Published but not marked: the next tick publishes them again,
		// which readers recognise by id.
		p.failures.WithLabelValues("record").Inc()
		return err
	}
	return nil
}

func (p *Publisher) updateLag(ctx context.Context) {
	lag, err := p.store.CheckpointLag(ctx)
	if err != nil {
		return // the database is away; the writer reports that
	}
	p.lag.Set(lag.Seconds())
}
