package config

import (
	"errors"
	"fmt"
	"time"
)

// IngestAPI configures cmd/ingest-api.
type IngestAPI struct {
	HTTPAddr string `name:"http-addr" env:"HTTP_ADDR" default:":8080" help:"Address the HTTP API listens on."`
	// HTTPWriteTimeout (api.DefaultWriteTimeout) bounds how long a response
	// may take: the server's default for every route, counted from the end
	// of the request's headers, and a query page's own deadline from the
	// moment it starts streaming. A client that stops reading is cut off
	// then and its database connection freed.
	HTTPWriteTimeout time.Duration `name:"http-write-timeout" env:"HTTP_WRITE_TIMEOUT" default:"20s" help:"Longest time to write a response (a query page: from its first byte); a client that stops reading is cut off."`
	// Metrics have their own listener so that they are never exposed on
	// the API port by accident (SPEC 8.1), as in the writer and replayer.
	MetricsAddr string `name:"metrics-addr" env:"METRICS_ADDR" default:":9090" help:"Address serving /metrics and the health endpoints, apart from the API."`
	Pprof       Pprof  `embed:""`

	Auth Auth    `embed:""`
	TLS  HTTPTLS `embed:""`

	Kafka    Kafka    `embed:""`
	Postgres Postgres `embed:""`
	Log      Log      `embed:""`
	Tracing  Tracing  `embed:""`

	// SPEC 2.1: 1 MiB fits any single record whose event_data respects its
	// 64 KiB limit many times over; 16 MiB fits a full batch of 5,000.
	MaxBodyBytes      int64 `name:"max-body-bytes" env:"MAX_BODY_BYTES" default:"1048576" help:"Largest single-record request body (bytes); larger gets 413."`
	MaxBatchBodyBytes int64 `name:"max-batch-body-bytes" env:"MAX_BATCH_BODY_BYTES" default:"16777216" help:"Largest batch request body (bytes); larger gets 413."`
	MaxBatchSize      int   `name:"max-batch-size" env:"MAX_BATCH_SIZE" default:"${default_max_batch_size}" help:"Most events in one batch request."`

	// With the collector at APIGCPercent the heap may grow to five times
	// what is live before a collection; the limit keeps batch bursts (64
	// connections sending 1,000 events each) within a container's memory.
	MemoryLimitMiB int64 `name:"memory-limit-mib" env:"MEMORY_LIMIT_MIB" default:"384" help:"Soft limit of the Go heap in MiB, unless GOMEMLIMIT is set (0: none); past it the collector runs more often."`

	Validation Validation   `embed:""`
	Source     Source       `embed:""`
	Spool      Spool        `embed:""`
	Integrity  IntegrityAPI `embed:""`

	// DuplicateCheckTimeout bounds the PostgreSQL look-up behind the 409 for
	// notifications; past it the record is published unchecked (202).
	DuplicateCheckTimeout time.Duration `name:"duplicate-check-timeout" env:"DUPLICATE_CHECK_TIMEOUT" default:"2s" help:"Longest wait for the notification duplicate check before answering 202."`
	// NotificationReservationTTL (store.DefaultReservationTTL) is how long
	// a notification_id stays held for a record that was never stored,
	// after a 503 whose outcome was unknown: a record Kafka did take must
	// be stored within it, or a different record may take the
	// notification_id over.
	NotificationReservationTTL time.Duration `name:"notification-reservation-ttl" env:"NOTIFICATION_RESERVATION_TTL" default:"24h" help:"How long a notification_id stays reserved for a record that was never stored (then another record may take it)."`

	// QueryTimeout is the statement timeout of reads: generous for any
	// indexed query, short enough that a pathological one cannot hold a
	// pooled connection.
	QueryTimeout time.Duration `name:"query-timeout" env:"QUERY_TIMEOUT" default:"5s" help:"Statement timeout of queries; past it the query is answered 503."`
	// QueryCountCap bounds pagination.total: counting tens of millions of
	// rows exactly costs seconds; past the cap total_exact is false.
	QueryCountCap int `name:"query-count-cap" env:"QUERY_COUNT_CAP" default:"10000" help:"Most rows counted for pagination.total (total_exact=false beyond)."`
	// QueryMaxOffset bounds offset paging (api.DefaultMaxOffset): every
	// skipped row is read and discarded, so deep offsets are a cheap way to
	// load the database; deeper reads use the cursor.
	QueryMaxOffset int `name:"query-max-offset" env:"QUERY_MAX_OFFSET" default:"10000" help:"Deepest offset a query may ask for; deeper gets 400 pointing to cursor paging."`
	// QueryMaxPageBytes (api.DefaultMaxPageBytes) caps one page's events:
	// a page is streamed, but a big one still takes a client long to read
	// and holds a database connection meanwhile.
	QueryMaxPageBytes int `name:"query-max-page-bytes" env:"QUERY_MAX_PAGE_BYTES" default:"8388608" help:"Most bytes of events in one query page (fewer than limit then; has_more and next_cursor continue)."`

	// ShutdownDelay is how long, after SIGTERM, the API keeps answering with
	// /health/ready at 503: long enough for load balancers and Kubernetes
	// endpoints to stop routing to it before the listener closes.
	ShutdownDelay time.Duration `name:"shutdown-delay" env:"SHUTDOWN_DELAY" default:"5s" help:"Time between SIGTERM (readiness 503) and closing the listener."`
	// ShutdownTimeout, with ShutdownDelay, stays within Kubernetes' default
	// 30 s grace period so in-flight requests finish before SIGKILL.
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"SHUTDOWN_TIMEOUT" default:"20s" help:"Longest wait for in-flight requests after the listener closes."`
}

// Validate reports settings that cannot work, all at once.
func (c IngestAPI) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Postgres.Validate(), c.Validation.Rules().Validate(), c.Source.Validate(),
		c.Auth.validate(c.MaxBatchSize, c.TLS.ClientCAFile != ""), c.TLS.validate(), c.Tracing.Validate(), c.Spool.validate(), c.Integrity.Validate()}
	if c.HTTPAddr == "" || c.MetricsAddr == "" {
		errs = append(errs, errors.New("HTTP_ADDR and METRICS_ADDR must not be empty"))
	}
	if c.MemoryLimitMiB < 0 {
		errs = append(errs, fmt.Errorf("MEMORY_LIMIT_MIB must not be negative, got %d", c.MemoryLimitMiB))
	}
	if c.HTTPAddr == c.MetricsAddr {
		errs = append(errs, fmt.Errorf("HTTP_ADDR and METRICS_ADDR are both %s: metrics must not share the API's port", c.HTTPAddr))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.MaxBatchBodyBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("MAX_BATCH_BODY_BYTES (%d) must not be below MAX_BODY_BYTES (%d)", c.MaxBatchBodyBytes, c.MaxBodyBytes))
	}
	if c.MaxBatchSize < 1 {
		errs = append(errs, fmt.Errorf("MAX_BATCH_SIZE must be at least 1, got %d", c.MaxBatchSize))
	}
	if c.DuplicateCheckTimeout <= 0 {
		errs = append(errs, errors.New("DUPLICATE_CHECK_TIMEOUT must be positive"))
	}
	if c.NotificationReservationTTL < time.Minute {
		errs = append(errs, fmt.Errorf("NOTIFICATION_RESERVATION_TTL must be at least 1m, got %s", c.NotificationReservationTTL))
	}
	if c.QueryTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("QUERY_TIMEOUT must be at least 100ms, got %s", c.QueryTimeout))
	}
	if c.QueryCountCap < 1 {
		errs = append(errs, fmt.Errorf("QUERY_COUNT_CAP must be at least 1, got %d", c.QueryCountCap))
	}
	if c.QueryMaxPageBytes < 1024 {
		errs = append(errs, fmt.Errorf("QUERY_MAX_PAGE_BYTES must be at least 1024, got %d", c.QueryMaxPageBytes))
	}
	// A write answered only after the publish (and notification check)
	// timeouts, or a query after its statement timeout, must still be
	// written.
	if slowest := max(c.Kafka.PublishTimeout+c.DuplicateCheckTimeout, c.QueryTimeout); c.HTTPWriteTimeout <= slowest {
		errs = append(errs, fmt.Errorf("HTTP_WRITE_TIMEOUT (%s) must exceed PUBLISH_TIMEOUT + DUPLICATE_CHECK_TIMEOUT and QUERY_TIMEOUT (%s)", c.HTTPWriteTimeout, slowest))
	}
	if c.HTTPWriteTimeout > c.ShutdownTimeout {
		errs = append(errs, fmt.Errorf("HTTP_WRITE_TIMEOUT (%s) must not exceed SHUTDOWN_TIMEOUT (%s): responses in flight at SIGTERM would be cut off", c.HTTPWriteTimeout, c.ShutdownTimeout))
	}
	if c.QueryMaxOffset < 1 {
		errs = append(errs, fmt.Errorf("QUERY_MAX_OFFSET must be at least 1, got %d", c.QueryMaxOffset))
	}
	if c.ShutdownDelay < 0 {
		errs = append(errs, errors.New("SHUTDOWN_DELAY must not be negative"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must be positive"))
	}
	return errors.Join(errs...)
}

// Spool is ingest-api's durable local spool behind the 202 (SPEC 11).
type Spool struct {
	Dir string `name:"spool-dir" env:"SPOOL_DIR" placeholder:"PATH" help:"Directory of the local spool that takes records Kafka cannot (answered 202); unset: no spool, such records are answered 503."`
	// 1 GiB holds about a million typical events (1 KiB with headers):
	// at 1,000 events/s some 15 minutes of Kafka outage, on a volume
	// small enough to give every replica.
	MaxBytes int64 `name:"spool-max-bytes" env:"SPOOL_MAX_BYTES" default:"1073741824" help:"Most bytes the spool holds on disk; past it records Kafka cannot take are answered 503."`
}

// Enabled reports whether SPOOL_DIR is set.
func (s Spool) Enabled() bool { return s.Dir != "" }

func (s Spool) validate() error {
	if s.Enabled() && s.MaxBytes < 1<<20 {
		return fmt.Errorf("SPOOL_MAX_BYTES must be at least 1 MiB, got %d", s.MaxBytes)
	}
	return nil
}
