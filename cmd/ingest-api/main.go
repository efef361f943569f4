// Command ingest-api is auditstream's HTTP front door: it validates audit
// events and notification records, publishes them to Kafka and answers once
// Kafka has acknowledged them. See SPEC section 2.
package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/service"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
)

func main() {
	var cfg config.IngestAPI
	config.Parse(&cfg, "ingest-api", "Audit Write API: validates audit records and publishes them to Kafka.", os.Args[1:])
	service.Run("ingest-api", cfg.Log.Level, cfg.Log.Format,
		func(ctx context.Context, log *zap.Logger) error { return run(ctx, cfg, log) })
}

func run(ctx context.Context, cfg config.IngestAPI, log *zap.Logger) error {
	reg := telemetry.NewRegistry()

	db, err := store.Open(ctx, store.Config{URL: cfg.Postgres.URL, MaxConns: cfg.Postgres.MaxConns})
	if err != nil {
		return err
	}
	defer db.Close()

	producer, err := kafka.NewProducer(cfg.Kafka.Client(), cfg.Kafka.TopicSpecs(), log.Named("kafka"), reg)
	if err != nil {
		return err
	}
	defer func() {
		if err := producer.Close(); err != nil {
			log.Error("close kafka producer", zap.Error(err))
		}
	}()

	reader, err := query.NewReader(db.Pool(), query.Config{StatementTimeout: cfg.QueryTimeout, CountCap: cfg.QueryCountCap})
	if err != nil {
		return err
	}
	health := telemetry.NewHealth(map[string]telemetry.Check{
		"kafka":      producer.Check,
		"postgresql": db.Ping,
	})
	handler, err := api.NewHandler(api.Config{
		Rules:                 cfg.Validation.Rules(),
		MaxBatchSize:          cfg.MaxBatchSize,
		MaxBodyBytes:          cfg.MaxBodyBytes,
		MaxBatchBodyBytes:     cfg.MaxBatchBodyBytes,
		EventsTopic:           cfg.Kafka.EventsTopic,
		NotificationsTopic:    cfg.Kafka.NotificationsTopic,
		DuplicateCheckTimeout: cfg.DuplicateCheckTimeout,
	}, api.Deps{
		Publisher:     producer,
		Notifications: db,
		Events:        reader,
		Health:        health,
		Log:           log,
		Registerer:    reg,
		Gatherer:      reg,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return service.ServeHTTP(ctx, srv, health, log, cfg.ShutdownDelay, cfg.ShutdownTimeout)
	})
	if cfg.Postgres.Migrate {
		g.Go(func() error {
			// The API serves events without PostgreSQL meanwhile; only
			// a failure that no retry heals ends it.
			if err := store.MigrateRetrying(ctx, cfg.Postgres.URL, log.Named("migrate")); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		// Until Kafka is reachable the API serves health and answers 503;
		// PostgreSQL is not needed to be ready, since notifications fall
		// back to 202 without it.
		if err := producer.Connect(ctx); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		health.SetReady()
		log.Info("ingest-api ready", zap.String("http_addr", cfg.HTTPAddr))
		producer.KeepTopics(ctx, cfg.Kafka.TopicCheckInterval)
		return nil
	})
	return g.Wait()
}
