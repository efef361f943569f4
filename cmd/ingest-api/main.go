// Command ingest-api is auditstream's HTTP front door: it validates audit
// events and notification records, publishes them to Kafka and answers once
// Kafka has acknowledged them. See SPEC section 2.
package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/provenance"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/service"
	"github.com/auditstream/auditstream/internal/spool"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
	"github.com/auditstream/auditstream/internal/ui"
	"github.com/auditstream/auditstream/internal/verify"
)

func main() {
	var cfg config.IngestAPI
	config.Parse(&cfg, "ingest-api", "Audit Write API: validates audit records and publishes them to Kafka.", os.Args[1:])
	service.Run("ingest-api", cfg.Log.Level, cfg.Log.Format,
		func(ctx context.Context, log *zap.Logger) error { return run(ctx, cfg, log) })
}

func run(ctx context.Context, cfg config.IngestAPI, log *zap.Logger) error {
	if percent, ok := cfg.GCPercent(); ok {
		debug.SetGCPercent(percent)
	}
	if limit := cfg.SoftMemoryLimit(); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	reg := telemetry.NewRegistry()
	tracing, err := telemetry.NewTracing(ctx, cfg.Tracing.Telemetry("ingest-api"), log.Named("tracing"))
	if err != nil {
		return err
	}
	defer tracing.Close(log)

	db, err := store.Open(ctx, store.Config{URL: cfg.Postgres.URL, MaxConns: cfg.Postgres.MaxConns,
		ReservationTTL: cfg.NotificationReservationTTL, Log: log.Named("store")})
	if err != nil {
		return err
	}
	defer db.Close()

	var traced []kafka.ProducerOption
	if tracing.Enabled() {
		traced = append(traced, kafka.WithOTELTracer())
	}
	producer, err := kafka.NewProducer(cfg.Kafka.Client(), cfg.Kafka.TopicSpecs(), log.Named("kafka"), reg, traced...)
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

	reader, err := query.NewReader(db.Pool(), query.Config{StatementTimeout: cfg.QueryTimeout, SendTimeout: cfg.HTTPWriteTimeout, CountCap: cfg.QueryCountCap})
	if err != nil {
		return err
	}
	checks := map[string]telemetry.Check{
		"kafka":      producer.Check,
		"postgresql": db.Ping,
	}
	var publisher message.Publisher = kafka.NewPublisher(producer)
	var spoolStore *spool.Store
	var drainer *spool.Publisher
	if cfg.Spool.Enabled() {
		if spoolStore, err = spool.Open(spool.Config{Dir: cfg.Spool.Dir, MaxBytes: cfg.Spool.MaxBytes}, log.Named("spool"), reg); err != nil {
			// Kafka still takes records; what it cannot take is answered
			// 503, as without a spool, until an operator fixes the
			// directory and restarts.
			log.Error("the local spool cannot be used; records Kafka cannot take are answered 503", zap.Error(err))
		}
		// Deferred after the producer's Close, so it runs before it: the
		// drainer has stopped by then (errgroup), the spool is closed,
		// then the producer flushes.
		defer func() {
			if err := spoolStore.Close(); err != nil {
				log.Error("close spool", zap.Error(err))
			}
		}()
		drainer = spool.NewPublisher(publisher, spoolStore, log.Named("spool"))
		publisher = drainer
		checks["spool"] = spoolStore.Check
	}
	health := telemetry.NewHealth(checks, telemetry.WithLogger(log.Named("health")))
	if spoolStore != nil {
		health.Detail("spool", func() any { return spoolStore.State() })
		health.Gate("spool", spoolStore.Room)
	}
	console, err := ui.NewHandler()
	if err != nil {
		return err
	}
	integrityDeps, err := wireIntegrity(cfg.Integrity, reader, log)
	if err != nil {
		return err
	}
	deps := api.Deps{
		Console:       console,
		Integrity:     integrityDeps,
		Publisher:     publisher,
		Notifications: db,
		Events:        reader,
		Holds:         db,
		Health:        health,
		Log:           log,
		Tracing:       tracing,
		Registerer:    reg,
		Signer:        source,
	}
	authn, err := wireAuth(cfg, log, reg, health, &deps)
	if err != nil {
		return err
	}
	handler, err := api.NewHandler(api.Config{
		Rules:                 cfg.Validation.Rules(),
		MaxBatchSize:          cfg.MaxBatchSize,
		MaxBodyBytes:          cfg.MaxBodyBytes,
		MaxBatchBodyBytes:     cfg.MaxBatchBodyBytes,
		EventsTopic:           cfg.Kafka.EventsTopic,
		NotificationsTopic:    cfg.Kafka.NotificationsTopic,
		DuplicateCheckTimeout: cfg.DuplicateCheckTimeout,
		MaxOffset:             cfg.QueryMaxOffset,
		MaxPageBytes:          cfg.QueryMaxPageBytes,
		WriteTimeout:          cfg.HTTPWriteTimeout,
		TrustedProxies:        cfg.Auth.TrustedProxies,
		VerifyTimeout:         cfg.Integrity.VerifyTimeout,
		ExportMaxDuration:     cfg.Integrity.ExportMaxDuration,
		MaxConcurrentExports:  cfg.Integrity.MaxConcurrentExports,
	}, deps)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       120 * time.Second,
	}
	if cfg.TLS.Enabled() {
		if srv.TLSConfig, err = auth.ServerTLS(auth.TLSConfig{
			CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, ClientCAFile: cfg.TLS.ClientCAFile,
			CheckInterval: cfg.Auth.FileCheckInterval,
		}, log.Named("tls")); err != nil {
			return err
		}
	}
	ops := telemetry.OpsMux(health, reg)
	if cfg.Pprof.Enabled {
		telemetry.ServePprof(ops)
	}
	metrics := &http.Server{Addr: cfg.MetricsAddr, Handler: ops, ReadHeaderTimeout: 10 * time.Second}

	// Metrics keep being served until the API has drained, so the last
	// requests are counted where Prometheus can still scrape them.
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMetrics()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return service.ServeHTTP(metricsCtx, metrics, health, log, 0, 5*time.Second) })
	g.Go(func() error {
		defer stopMetrics()
		return service.ServeHTTP(ctx, srv, health, log, cfg.ShutdownDelay, cfg.ShutdownTimeout)
	})
	g.Go(func() error {
		if cfg.Postgres.Migrate {
			// The API serves events without PostgreSQL meanwhile; only
			// a failure that no retry heals ends it.
			if err := store.MigrateRetrying(ctx, cfg.Postgres.URL, log.Named("migrate")); err != nil {
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}
		}
		// Once the reservations table exists.
		return db.RunReservationPruning(ctx)
	})
	if authn != nil {
		g.Go(func() error {
			// An issuer that cannot be reached now is not fatal (its keys
			// are fetched again when a JWT arrives), but the operator
			// hears of it.
			if err := authn.Refresh(ctx); err != nil && ctx.Err() == nil {
				log.Warn("JWT issuer keys not fetched at start; JWTs are refused until they are", zap.Error(err))
			}
			return nil
		})
	}
	ready := func() {
		health.SetReady()
		log.Info("ingest-api ready", zap.String("http_addr", cfg.HTTPAddr), zap.String("metrics_addr", cfg.MetricsAddr),
			zap.Bool("https", cfg.TLS.Enabled()), zap.Bool("spool", drainer != nil))
	}
	if drainer != nil {
		g.Go(func() error { return drainer.Run(ctx) })
	}
	g.Go(func() error {
		// Topics found missing later (a cluster rebuilt empty) are created
		// again, once the producer is connected.
		producer.KeepTopics(ctx, cfg.Kafka.TopicCheckInterval)
		return nil
	})
	g.Go(func() error {
		// PostgreSQL is not needed to be ready, since notifications fall
		// back to 202 without it. Without a usable spool, until Kafka is
		// reachable the API serves health and answers 503. With one
		// (SPEC 11): if Kafka is reachable now, what a previous process
		// left is drained before the API reports ready, so that nothing
		// new goes behind it needlessly; if not, the API is ready at once,
		// answering 202 from the spool while it has room.
		if drainer != nil && spoolStore.Err() == nil {
			if err := producer.ConnectOnce(); err == nil {
				log.Info("kafka producer connected; draining the spool before reporting ready", zap.Int("records", spoolStore.State().Records))
				if err := drainer.WaitDrained(ctx); err != nil {
					return nil
				}
				ready()
				return nil
			}
			ready()
		}
		if err := producer.Connect(ctx); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if drainer == nil || spoolStore.Err() != nil {
			ready()
		}
		return nil
	})
	return g.Wait()
}

// wireAuth sets the authenticator and the rate limiter of deps: access
// control is on unless AUTH_DISABLED=true said otherwise, which is logged
// and shown on /health (the authenticator is then nil).
func wireAuth(cfg config.IngestAPI, log *zap.Logger, reg prometheus.Registerer, health *telemetry.Health, deps *api.Deps) (*auth.Authenticator, error) {
	if cfg.Auth.RateLimitRPS > 0 {
		limiter, err := auth.NewLimiter(cfg.Auth.RateLimitRPS, cfg.Auth.RateLimitBurst)
		if err != nil {
			return nil, err
		}
		deps.Limiter = limiter
	}
	if cfg.Auth.Disabled {
		log.Warn("access control is disabled (AUTH_DISABLED=true): every request acts as 'anonymous' with every scope; never run like this where the API is reachable by others")
		health.Note("auth", "disabled")
		deps.Auth = auth.Disabled{}
		return nil, nil
	}
	authn, err := auth.New(cfg.Auth.Authenticator(cfg.TLS.ClientCAFile != ""), log.Named("auth"), reg)
	if err != nil {
		return nil, err
	}
	deps.Auth = authn
	return authn, nil
}

// wireIntegrity loads the keys of verify-chain, the export and the
// public-key route; a route whose keys are not configured answers 503,
// which is logged here once.
func wireIntegrity(c config.IntegrityAPI, reader *query.Reader, log *zap.Logger) (api.Integrity, error) {
	var out api.Integrity
	var err error
	if c.KeysFile != "" {
		if out.Keys, err = integrity.LoadKeys(c.KeysFile); err != nil {
			return api.Integrity{}, err
		}
		out.Exporter = reader
	}
	if c.CheckpointPublicKeyFile != "" {
		if out.CheckpointKeys, err = integrity.LoadPublicKeys(c.CheckpointPublicKeyFile); err != nil {
			return api.Integrity{}, err
		}
	}
	if c.ExportSigningKeyFile != "" {
		if out.ExportSigner, err = integrity.LoadSigner(c.ExportSigningKeyFile); err != nil {
			return api.Integrity{}, err
		}
	}
	if out.Keys != nil && out.CheckpointKeys != nil {
		out.Verifier = verify.New(reader, out.Keys, out.CheckpointKeys, 0)
	}
	var off []string
	if out.Verifier == nil {
		off = append(off, "verify-chain (INTEGRITY_KEYS_FILE and CHECKPOINT_PUBLIC_KEY_FILE)")
	}
	if out.ExportSigner == nil || out.Keys == nil {
		off = append(off, "export (EXPORT_SIGNING_KEY_FILE and INTEGRITY_KEYS_FILE)")
	}
	if out.CheckpointKeys == nil {
		off = append(off, "checkpoints/public-key (CHECKPOINT_PUBLIC_KEY_FILE)")
	}
	if len(off) > 0 {
		log.Warn("integrity routes answer 503 until their keys are configured", zap.Strings("routes", off))
	}
	return out, nil
}
