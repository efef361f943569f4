// Package store is auditstream's PostgreSQL layer: the connection pool, the
// embedded schema migrations, the monthly partitions of audit_events, the
// hash chain's heads and checkpoint records (SPEC 9; the chain itself is
// computed by internal/integrity), and the checks ingest-api makes before
// publishing a notification.
//
// Schema and the reasons behind it: migrations/000001_init.up.sql,
// migrations/000006_hash_chain.up.sql for the chain.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/integrity"
)

// Defaults for Config fields left zero.
const (
	// DefaultMaxConns: a writer holds one connection per flushing batch and
	// ingest-api one per query or duplicate check; 10 per process keeps
	// several replicas of each under PostgreSQL's default max_connections
	// of 100.
	DefaultMaxConns int32 = 10
	// DefaultConnectTimeout bounds dialling and authenticating one
	// connection. A database that is down must fail fast, so ingest-api can
	// answer 202 for notifications and health can report it, well within
	// an HTTP client's patience; a healthy server on a network answers in
	// milliseconds.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultPartitionsAhead: months of partitions kept ready after the
	// current one, so that a month never starts without its partition even
	// if no binary runs for a while.
	DefaultPartitionsAhead = 3
)

// maintenanceRetryInterval: after a failure (database down) the store's
// periodic loops try again this soon.
const maintenanceRetryInterval = time.Minute

// Config configures Open. Only URL is required.
type Config struct {
	// URL is a PostgreSQL connection string, URL or key=value form.
	URL string
	// MaxConns is the pool size (default DefaultMaxConns).
	MaxConns int32
	// ConnectTimeout bounds each connection attempt and Ping (default
	// DefaultConnectTimeout, unless URL sets connect_timeout).
	ConnectTimeout time.Duration
	// PartitionsAhead is how many months after the current one
	// EnsurePartitionsAhead keeps partitioned (default
	// DefaultPartitionsAhead).
	PartitionsAhead int
	// Log receives the store's own messages (default: none).
	Log *zap.Logger
	// Chain, when set, makes Write link every event it stores to the hash
	// chain of its correlation_id with these keys (SPEC 9.1); nil stores
	// events without a chain (INTEGRITY_DISABLED, and binaries that only
	// read).
	Chain *integrity.Keys
	// ReservationTTL is how long a notification_id stays held for a record
	// that was never stored (default DefaultReservationTTL); see
	// ReserveNotification.
	ReservationTTL time.Duration
}

// Store is a pool of connections to the auditstream database.
type Store struct {
	pool           *pgxpool.Pool
	pingTimeout    time.Duration
	ahead          int
	log            *zap.Logger
	chain          *integrity.Keys
	reservationTTL time.Duration
	// knownMonths caches the months whose partition exists (time.Time of
	// the month's start → struct{}), so writes check partitions once a month.
	knownMonths sync.Map
	// heads remembers the chain heads this store committed (with Chain).
	heads *headCache
}

// Open creates the connection pool without connecting: the pool dials on
// first use, so a binary starts (and ingest-api serves) while PostgreSQL is
// down, and each later attempt fails within the connect timeout until it is
// back. Only a malformed configuration is an error.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("store: database url is empty")
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("store: parse database url: %w", err)
	}
	poolCfg.MaxConns = DefaultMaxConns
	if cfg.MaxConns > 0 {
		poolCfg.MaxConns = cfg.MaxConns
	}
	// MinConns stays 0: a minimum would make the pool dial in the
	// background at once.
	switch {
	case cfg.ConnectTimeout > 0:
		poolCfg.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	case poolCfg.ConnConfig.ConnectTimeout == 0:
		poolCfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := poolCfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		poolCfg.ConnConfig.RuntimeParams["application_name"] = "auditstream"
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("store: create pool: %w", err)
	}
	s := &Store{
		pool:        pool,
		pingTimeout: poolCfg.ConnConfig.ConnectTimeout,
		ahead:       DefaultPartitionsAhead,
		log:         cfg.Log,
		chain:       cfg.Chain,
		heads:       newHeadCache(),
	}
	if cfg.PartitionsAhead > 0 {
		s.ahead = cfg.PartitionsAhead
	}
	s.reservationTTL = DefaultReservationTTL
	if cfg.ReservationTTL > 0 {
		s.reservationTTL = cfg.ReservationTTL
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	return s, nil
}

// Pool returns the underlying pool, for the writer's COPY and the queries.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes every connection; in-flight uses finish first.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers. It gives up after the connect
// timeout even when ctx has no deadline, so a health check on a dead
// database answers promptly.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.pingTimeout)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}
