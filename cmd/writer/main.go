// Command writer consumes audit records from Kafka in batches and stores
// them in PostgreSQL exactly once, dead-lettering what cannot be stored.
// See SPEC sections 3 and 5.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/checkpoint"
	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/lifecycle"
	"github.com/auditstream/auditstream/internal/provenance"
	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/service"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
	"github.com/auditstream/auditstream/internal/writer"
)

func main() {
	var cfg config.Writer
	config.Parse(&cfg, "writer", "Consumes audit records from Kafka and stores them in PostgreSQL in batches.", os.Args[1:])
	service.Run("writer", cfg.Log.Level, cfg.Log.Format,
		func(ctx context.Context, log *zap.Logger) error { return run(ctx, cfg, log) })
}

func run(ctx context.Context, cfg config.Writer, log *zap.Logger) error {
	if limit := cfg.SoftMemoryLimit(); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	reg := telemetry.NewRegistry()
	tracing, err := telemetry.NewTracing(ctx, cfg.Tracing.Telemetry("writer"), log.Named("tracing"))
	if err != nil {
		return err
	}
	defer tracing.Close(log)

	chainKeys, signer, err := integrityKeys(cfg.Integrity, log)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{URL: cfg.Postgres.URL, MaxConns: cfg.Postgres.MaxConns, Log: log.Named("store"),
		Chain: chainKeys})
	if err != nil {
		return err
	}
	defer db.Close()

	// Dead letters go through the same acknowledged producer, behind the
	// same watermill Publisher, as the API's records: the DLQ must have a
	// record before its offset is committed. It has no sarama tracer: that
	// would rewrite the traceparent a dead letter keeps byte for byte.
	// Checkpoints go through it too: one counts as published once the
	// topic has acknowledged it.
	topics := cfg.Kafka.TopicSpecs()
	if signer != nil {
		topics = append(topics, cfg.Integrity.CheckpointsTopicSpec(cfg.Kafka.TopicReplication))
	}
	producer, err := kafka.NewProducer(cfg.Kafka.Client(), topics, log.Named("kafka"), reg)
	if err != nil {
		return err
	}
	defer func() {
		if err := producer.Close(); err != nil {
			log.Error("close kafka producer", zap.Error(err))
		}
	}()

	source, err := provenance.Open(cfg.Source.KeysFile, log)
	if err != nil {
		return err
	}
	publisher := kafka.NewPublisher(producer)
	member, err := cfg.MemberName() // checked by Validate
	if err != nil {
		return err
	}
	w, err := writer.New(writer.Config{
		Group:              cfg.Group,
		InstanceID:         member,
		SessionTimeout:     cfg.SessionTimeout,
		EventsTopic:        cfg.Kafka.EventsTopic,
		NotificationsTopic: cfg.Kafka.NotificationsTopic,
		DLQTopic:           cfg.Kafka.DLQTopic,
		BatchSize:          cfg.BatchSize,
		BatchAge:           cfg.BatchAge,
		FlushLanes:         cfg.FlushLanes,
		MaxBackoff:         cfg.MaxBackoff,
		WriteTimeout:       cfg.WriteTimeout,
		GroupStallTimeout:  cfg.GroupStallTimeout,
		GroupPollInterval:  cfg.GroupPollInterval,
		Rules:              cfg.Validation.Rules(),
		Tracing:            tracing,
		Submitters:         source,
	}, cfg.Kafka.Client(), db, publisher, log.Named("writer"), writer.NewMetrics(reg))
	if err != nil {
		return err
	}

	// The system's own events (retention) go to the events topic through
	// the same acknowledged producer, signed as the API signs.
	maintainer, err := lifecycle.New(lifecycle.Config{Interval: cfg.MaintenanceInterval, RetentionDays: cfg.RetentionDays},
		db, selfaudit.New(publisher, source, cfg.Kafka.EventsTopic, "writer"), log.Named("lifecycle"), reg)
	if err != nil {
		return err
	}
	var checkpoints *checkpoint.Publisher
	if signer != nil {
		host, _ := os.Hostname() // only names the publisher in its checkpoints
		checkpoints, err = checkpoint.New(checkpoint.Config{Interval: cfg.Integrity.CheckpointInterval,
			Topic: cfg.Integrity.CheckpointsTopic, Writer: host}, db, producer, signer, log.Named("checkpoint"), reg)
		if err != nil {
			return err
		}
	}

	health := telemetry.NewHealth(map[string]telemetry.Check{
		"kafka":      producer.Check,
		"postgresql": db.Ping,
		"writer":     w.Check,
	}, telemetry.WithLogger(log.Named("health")))
	ops := telemetry.OpsMux(health, reg)
	if cfg.Pprof.Enabled {
		telemetry.ServePprof(ops)
	}
	srv := &http.Server{Addr: cfg.MetricsAddr, Handler: ops, ReadHeaderTimeout: 10 * time.Second}

	// Run stops each part when ctx ends; the HTTP server keeps serving
	// health and metrics until the writer has flushed its last batch.
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return service.ServeHTTP(httpCtx, srv, health, log, 0, 5*time.Second) })
	g.Go(func() error {
		// Not ready from the signal on, while the last batch drains.
		<-gctx.Done()
		health.SetNotReady("shutting down")
		return nil
	})
	g.Go(func() error {
		defer stopHTTP()
		if cfg.Postgres.Migrate {
			if err := store.MigrateRetrying(gctx, cfg.Postgres.URL, log.Named("migrate")); err != nil {
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err // cannot heal: exit, and let the operator see why
			}
		}
		// Partitions ahead and retention are the writer's, once the
		// schema (and its functions) exists.
		g.Go(func() error { return maintainer.Run(gctx) })
		if err := producer.Connect(gctx); err != nil {
			return nil // only ends when ctx does
		}
		if gctx.Err() == nil {
			health.SetReady()
		}
		g.Go(func() error {
			producer.KeepTopics(gctx, cfg.Kafka.TopicCheckInterval)
			return nil
		})
		log.Info("writer ready", zap.String("group", cfg.Group), zap.String("instance_id", member), zap.Int("batch_size", cfg.BatchSize),
			zap.Duration("batch_age", cfg.BatchAge))
		if checkpoints == nil {
			return w.Run(gctx)
		}
		g.Go(func() error { return checkpoints.Run(gctx) })
		err := w.Run(gctx)
		// The last batch is in: anchor it too, bounded like a flush.
		final, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.WriteTimeout)
		defer cancel()
		if cpErr := checkpoints.Checkpoint(final); cpErr != nil {
			log.Warn("last checkpoint failed; the next writer to start publishes it", zap.Error(cpErr))
		}
		return err
	})
	return g.Wait()
}

// integrityKeys loads the chain's keys and the checkpoint signing key, or
// returns nils with integrity disabled (after a warning).
func integrityKeys(cfg config.Integrity, log *zap.Logger) (*integrity.Keys, *integrity.Signer, error) {
	if cfg.Disabled {
		log.Warn("integrity disabled (INTEGRITY_DISABLED): events are stored without a hash chain (chain fields null) and no checkpoints are published")
		return nil, nil, nil
	}
	keys, err := integrity.LoadKeys(cfg.KeysFile)
	if err != nil {
		return nil, nil, err
	}
	signer, err := integrity.LoadSigner(cfg.CheckpointSigningKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %w", err)
	}
	log.Info("integrity keys loaded", zap.Strings("key_ids", keys.KeyIDs()), zap.String("signing_key_id", keys.SigningKeyID()),
		zap.String("checkpoint_public_key_sha256", integrity.KeyFingerprint(signer.PublicKey())))
	return keys, signer, nil
}
