package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/backoff"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate applies the embedded migrations that databaseURL's database lacks
// and returns the schema version it is at afterwards.
//
// golang-migrate holds a PostgreSQL session advisory lock (keyed on the
// database and its schema_migrations table) while it reads the version and
// applies migrations, so any number of binaries may call Migrate at the same
// time: one applies, the others wait and then find nothing to do. Each
// migration file runs in one transaction.
//
// Cancelling ctx stops after the migration in progress; a dirty schema (a
// migration that failed half-way outside a transaction) is reported, not
// repaired. Errors that retrying cannot heal (a malformed URL, a dirty
// schema, a connection PostgreSQL refuses, see refusedAtStartup) are
// marked backoff.Permanent.
func Migrate(ctx context.Context, databaseURL string, log *zap.Logger) (uint, error) {
	if log == nil {
		log = zap.NewNop()
	}
	connCfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return 0, backoff.Permanent(fmt.Errorf("migrate: parse database url: %w", err))
	}
	if connCfg.ConnectTimeout == 0 {
		connCfg.ConnectTimeout = DefaultConnectTimeout
	}
	// Through database/sql, as the golang-migrate driver wants; the driver
	// takes ownership of db and closes it with m.Close.
	db := stdlib.OpenDB(*connCfg)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		err = fmt.Errorf("migrate: connect: %w", err)
		if refusedAtStartup(err) {
			return 0, backoff.Permanent(err)
		}
		return 0, err
	}
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		_ = db.Close()
		return 0, fmt.Errorf("migrate: %w", err)
	}
	src, err := iofs.New(migrationFiles, "migrations")
	if err != nil {
		_ = driver.Close()
		return 0, fmt.Errorf("migrate: embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		_ = driver.Close()
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if srcErr, dbErr := m.Close(); srcErr != nil || dbErr != nil {
			log.Warn("close migrations", zap.NamedError("source_error", srcErr), zap.NamedError("database_error", dbErr))
		}
	}()
	m.Log = migrateLogger{log: log}

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			// Buffered by golang-migrate; read between migrations.
			m.GracefulStop <- true
		case <-done:
		}
	}()

	// Up checks for a dirty schema under the lock; reading the version
	// before it would race with a concurrent migrator, which marks the
	// version dirty while it applies.
	err = m.Up()
	applied := !errors.Is(err, migrate.ErrNoChange)
	var dirtyErr migrate.ErrDirty
	switch {
	case errors.Is(err, migrate.ErrNoChange):
	case errors.As(err, &dirtyErr):
		return 0, backoff.Permanent(fmt.Errorf("migrate: %w: a migration failed half-way; repair the schema by hand, "+
			"then set the version with `migrate force`", err))
	case err != nil:
		return 0, fmt.Errorf("migrate: apply: %w", err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return 0, fmt.Errorf("migrate: %w", ctxErr)
	}

	// Read without the lock: a binary with newer migrations may be applying
	// them (and show a dirty, higher version); ours are all in either way.
	version, _, err := m.Version()
	if err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	if applied {
		log.Info("database schema migrated", zap.Uint("version", version))
	} else {
		log.Info("database schema is up to date", zap.Uint("version", version))
	}
	return version, nil
}

// migrateLogger adapts zap to golang-migrate's logger, which reports each
// applied migration ("1/u init (12.3ms)").
type migrateLogger struct{ log *zap.Logger }

func (l migrateLogger) Printf(format string, v ...any) {
	l.log.Info(strings.TrimSpace(fmt.Sprintf(format, v...)), zap.String("component", "migrate"))
}

func (l migrateLogger) Verbose() bool { return false }

// MigrateRetrying applies the migrations, retrying with jittered backoff
// while PostgreSQL is unreachable, until it succeeds or ctx ends (then it
// returns ctx's error). Binaries call it at start-up, so a database that
// comes up after them is migrated as soon as it is there. An error that no
// retry can heal (see Migrate) is returned at once: the binary exits with
// it, and the operator sees a crash loop with its reason rather than a
// binary that stays unready for ever.
func MigrateRetrying(ctx context.Context, databaseURL string, log *zap.Logger) error {
	return backoff.Retry(ctx, backoff.Migrate, func(ctx context.Context) error {
		_, err := Migrate(ctx, databaseURL, log)
		return err
	}, func(attempt int, err error, wait time.Duration) {
		log.Warn("schema migration failed, retrying", zap.Int("attempt", attempt), zap.Duration("backoff", wait), zap.Error(err))
	})
}

// refusedAtStartup reports whether PostgreSQL refused the connection for
// a reason only an operator can fix: SQLSTATE class 28 (the role does not
// exist, may not log in, or its password is wrong) or 3D000 (the database
// does not exist). Classify calls these an outage, and rightly so for a
// running writer, whose batches must wait for the fix; a binary that
// cannot even start had better crash loop with the reason.
func refusedAtStartup(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000"
}
