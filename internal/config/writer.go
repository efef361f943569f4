package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/auditstream/auditstream/internal/audit"
)

// Writer configures cmd/writer.
type Writer struct {
	MetricsAddr string `name:"metrics-addr" env:"METRICS_ADDR" default:":9090" help:"Address serving /metrics and the health endpoints."`
	Pprof       Pprof  `embed:""`

	Kafka      Kafka      `embed:""`
	Postgres   Postgres   `embed:""`
	Log        Log        `embed:""`
	Tracing    Tracing    `embed:""`
	Validation Validation `embed:""`
	Source     Source     `embed:""`
	Integrity  Integrity  `embed:""`

	Group string `name:"consumer-group" env:"CONSUMER_GROUP" default:"auditstream-writer" help:"Kafka consumer group of the writers."`
	// Static membership (KIP-345): a writer that crashes and comes back
	// under the same name within GROUP_SESSION_TIMEOUT gets its partitions
	// back at once, without a rebalance; a dynamic member would wait for
	// its dead predecessor's session to expire first. The name must be
	// stable across restarts and unique among live writers: a pod name
	// is both (POD_NAME from the downward API), and so is a host name
	// with one writer per host. The price: a writer that crashes and does
	// not come back holds its partitions for the whole session timeout
	// before another writer takes them (a writer stopped with SIGTERM
	// leaves the group at once).
	InstanceID       string        `name:"instance-id" env:"WRITER_INSTANCE_ID,POD_NAME" placeholder:"NAME" help:"Static consumer group member name (group.instance.id), stable across restarts and unique among the writers (default: POD_NAME, else the host name)."`
	StaticMembership bool          `name:"static-membership" env:"GROUP_STATIC_MEMBERSHIP" default:"true" negatable:"" help:"Join the consumer group as a static member named by --instance-id, so a restart within the session timeout needs no rebalance."`
	SessionTimeout   time.Duration `name:"group-session-timeout" env:"GROUP_SESSION_TIMEOUT" default:"15s" help:"How long the group waits for a writer that went silent (a crash, a partition) before giving its partitions to the others, and how long a crashed static member may take to restart without a rebalance (6s to under 30s, the rebalance timeout)."`
	// 5,000 rows amortise a COPY transaction well (a few ms each) while a
	// batch stays a few MiB of memory; 100 ms bounds the added latency at
	// low volume.
	BatchSize int           `name:"batch-size" env:"BATCH_SIZE" default:"5000" help:"Records per batch: a batch is flushed when it has this many."`
	BatchAge  time.Duration `name:"batch-age" env:"BATCH_AGE" default:"100ms" help:"Longest a record waits in a batch before it is flushed."`
	// The default is writer.DefaultFlushLanes (TestDefaultsAreTheOwners
	// checks).
	FlushLanes int `name:"flush-lanes" env:"FLUSH_LANES" default:"4" help:"Batches stored at once, each in its own transaction on its own connection, over disjoint shares of the writer's partitions."`
	// A soft limit keeps the writer's memory flat however deep the backlog:
	// what it holds is bounded (the lanes' batches, sarama's fetch
	// buffers), but without a limit the Go heap may grow to twice that
	// before a collection (GOGC=100). GOMEMLIMIT, when set (the Kubernetes
	// manifest sets it from the container's limit), wins.
	MemoryLimitMiB int64 `name:"memory-limit-mib" env:"MEMORY_LIMIT_MIB" default:"160" help:"Soft limit of the Go heap in MiB, unless GOMEMLIMIT is set (0: none); past it the collector runs more often."`
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
	if c.StaticMembership {
		if _, err := c.MemberName(); err != nil {
			errs = append(errs, err)
		}
	}
	// Kafka brokers refuse session timeouts under 6 s by default
	// (group.min.session.timeout.ms); one as long as the rebalance
	// timeout (30 s, internal/kafka) would let the coordinator take a
	// writer flushing its last batch at a rebalance for dead.
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout >= 30*time.Second {
		errs = append(errs, fmt.Errorf("GROUP_SESSION_TIMEOUT must be at least 6s and under 30s, got %s", c.SessionTimeout))
	}
	if c.MemoryLimitMiB < 0 {
		errs = append(errs, fmt.Errorf("MEMORY_LIMIT_MIB must not be negative, got %d", c.MemoryLimitMiB))
	}
	if c.FlushLanes < 1 || c.FlushLanes >= int(c.Postgres.MaxConns) {
		errs = append(errs, fmt.Errorf("FLUSH_LANES must be at least 1 and below DATABASE_MAX_CONNS (%d: retention and checkpoints need a connection too), got %d", c.Postgres.MaxConns, c.FlushLanes))
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

// MemberName is the writer's static member name: --instance-id
// (WRITER_INSTANCE_ID, else POD_NAME), else the host name; "" with static
// membership off.
func (c Writer) MemberName() (string, error) {
	if !c.StaticMembership {
		return "", nil
	}
	name := c.InstanceID
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("WRITER_INSTANCE_ID is not set and the host name cannot be read: %w", err)
		}
		name = host
	}
	if !memberNameRE.MatchString(name) || len(name) > 249 || name == "." || name == ".." {
		return "", fmt.Errorf("WRITER_INSTANCE_ID %q must be 1 to 249 letters, digits, '.', '_' or '-' (set it, or turn static membership off with GROUP_STATIC_MEMBERSHIP=false)", name)
	}
	return name, nil
}

// memberNameRE is Kafka's rule for a group.instance.id.
var memberNameRE = regexp.MustCompile(`^[0-9a-zA-Z._-]+$`)

// SoftMemoryLimit is the Go heap limit the writer sets at start, in bytes
// (softMemoryLimit).
func (c Writer) SoftMemoryLimit() int64 { return softMemoryLimit(c.MemoryLimitMiB) }
