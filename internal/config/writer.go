package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/internal/audit"
)

// Writer configures cmd/writer.
type Writer struct {
	MetricsAddr string `name:"metrics-addr" env:"METRICS_ADDR" default:":9090" help:"Address serving /metrics and the health endpoints."`

	Kafka      Kafka      `embed:""`
	Postgres   Postgres   `embed:""`
	Log        Log        `embed:""`
	Tracing    Tracing    `embed:""`
	Validation Validation `embed:""`
	Source     Source     `embed:""`
	Integrity  Integrity  `embed:""`

	Group string `name:"consumer-group" env:"CONSUMER_GROUP" default:"auditstream-writer" help:"Kafka consumer group of the writers."`
	// 5,000 rows amortise a COPY transaction well (a few ms each) while a
	// batch stays a few MiB of memory; 100 ms bounds the added latency at
	// low volume.
	BatchSize int           `name:"batch-size" env:"BATCH_SIZE" default:"5000" help:"Records per batch: a batch is flushed when it has this many."`
	BatchAge  time.Duration `name:"batch-age" env:"BATCH_AGE" default:"100ms" help:"Longest a record waits in a batch before it is flushed."`
	// During a PostgreSQL outage the writer retries with exponential backoff
	// up to this cap: short enough to notice recovery quickly, long enough
	// not to hammer a database that is restarting.
	MaxBackoff time.Duration `name:"max-backoff" env:"MAX_BACKOFF" default:"10s" help:"Cap of the retry backoff while PostgreSQL is unreachable (each wait is drawn at random up to the doubling ceiling)."`
	// WriteTimeout bounds one COPY transaction; past it the attempt counts as
	// an outage and is retried. It also bounds the last flush on SIGTERM, so
	// it stays below Kubernetes' default 30 s grace period.
	WriteTimeout time.Duration `name:"write-timeout" env:"WRITE_TIMEOUT" default:"20s" help:"Longest one batch transaction may take before it is retried (and the last flush on shutdown)."`
	// The defaults are writer.DefaultGroupStallTimeout and
	// DefaultGroupPollInterval (TestDefaultsAreTheOwners checks).
	GroupStallTimeout time.Duration `name:"group-stall-timeout" env:"GROUP_STALL_TIMEOUT" default:"1m" help:"/health turns unhealthy when the writer has had no consumer group session this long while records wait."`
	GroupPollInterval time.Duration `name:"group-poll-interval" env:"GROUP_POLL_INTERVAL" default:"15s" help:"How often the writer reads the group's committed offsets and the high-water marks of all partitions (metrics, stall check)."`

	// Retention (SPEC 10). The defaults are internal/lifecycle's
	// (TestDefaultsAreTheOwners checks; a ${var} taken from lifecycle
	// would link pgx into dlq-replayer).
	RetentionDays       int           `name:"retention-days" env:"RETENTION_DAYS" default:"${default_retention_days}" help:"Days an event without its own retention_days is kept (1-2555); a monthly partition is dropped once every event in it is past its retention and none is under legal hold."`
	MaintenanceInterval time.Duration `name:"maintenance-interval" env:"MAINTENANCE_INTERVAL" default:"1h" help:"How often the writer keeps the partitions ahead in place and applies retention."`
}

// Validate reports settings that cannot work, all at once.
func (c Writer) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Postgres.Validate(), c.Validation.Rules().Validate(), c.Source.Validate(), c.Tracing.Validate(),
		c.Integrity.Validate()}
	if c.MetricsAddr == "" {
		errs = append(errs, errors.New("METRICS_ADDR must not be empty"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("CONSUMER_GROUP must not be empty"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("BATCH_SIZE must be at least 1, got %d", c.BatchSize))
	}
	if c.BatchAge <= 0 {
		errs = append(errs, fmt.Errorf("BATCH_AGE must be positive, got %s", c.BatchAge))
	}
	if c.MaxBackoff < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("MAX_BACKOFF must be at least 100ms, got %s", c.MaxBackoff))
	}
	if c.GroupPollInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("GROUP_POLL_INTERVAL must be at least 100ms, got %s", c.GroupPollInterval))
	}
	if c.GroupStallTimeout < c.GroupPollInterval {
		errs = append(errs, fmt.Errorf("GROUP_STALL_TIMEOUT (%s) must be at least GROUP_POLL_INTERVAL (%s)", c.GroupStallTimeout, c.GroupPollInterval))
	}
	if c.WriteTimeout < time.Second {
		errs = append(errs, fmt.Errorf("WRITE_TIMEOUT must be at least 1s, got %s", c.WriteTimeout))
	}
	if c.RetentionDays < audit.MinRetentionDays || c.RetentionDays > audit.MaxRetentionDays {
		errs = append(errs, fmt.Errorf("RETENTION_DAYS must be %d to %d, got %d", audit.MinRetentionDays, audit.MaxRetentionDays, c.RetentionDays))
	}
	if c.MaintenanceInterval < time.Second {
		errs = append(errs, fmt.Errorf("MAINTENANCE_INTERVAL must be at least 1s, got %s", c.MaintenanceInterval))
	}
	return errors.Join(errs...)
}
