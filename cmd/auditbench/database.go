package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/testenv"
)

// database is the PostgreSQL a stage runs against.
type database struct {
	URL string
	// Throwaway is true for a cluster this process started (and removes).
	Throwaway bool
	close     func()
}

func (d *database) Close() {
	if d.close != nil {
		d.close()
	}
}

// throwawaySettings are applied to a throwaway cluster before the run.
// testenv starts PostgreSQL with its defaults (shared_buffers 128MB), which
// no production server of a 10M-row table runs with; these are the usual
// first changes, sized for a small machine. They size memory and space
// checkpoints out; durability stays the server's default (fsync,
// synchronous_commit and full_page_writes on: StartDurablePostgres), as a
// user runs it. DATABASE_URL is used as it is.
var throwawaySettings = map[string]string{
	"shared_buffers":       "1GB",
	"effective_cache_size": "4GB",
	"maintenance_work_mem": "512MB",
	"work_mem":             "16MB",
	// Fewer checkpoints while generating data.
	"max_wal_size":       "8GB",
	"checkpoint_timeout": "30min",
}

// openDatabase returns DATABASE_URL when set, else starts a throwaway
// cluster through testenv, tuned by throwawaySettings.
func openDatabase(ctx context.Context, logf func(string, ...any)) (*database, error) {
	if url := os.Getenv(testenv.EnvDatabaseURL); url != "" {
		logf("PostgreSQL: %s (from %s)", redact(url), testenv.EnvDatabaseURL)
		return &database{URL: url}, nil
	}
	start := time.Now()
	pg, err := startThrowaway(ctx)
	if err != nil {
		return nil, err
	}
	logf("PostgreSQL: throwaway cluster at %s (started in %s)", pg.URL(), time.Since(start).Round(time.Millisecond))
	return &database{URL: pg.URL(), Throwaway: true, close: func() { _ = pg.Close() }}, nil
}

// startThrowaway starts a durable cluster (or a database on DATABASE_URL's
// server, untouched) and applies throwawaySettings to an embedded one,
// restarting it once so shared_buffers applies.
func startThrowaway(ctx context.Context) (*testenv.Postgres, error) {
	pg, err := testenv.StartDurablePostgres(ctx)
	if err != nil {
		return nil, fmt.Errorf("start throwaway postgresql: %w", err)
	}
	if os.Getenv(testenv.EnvDatabaseURL) != "" {
		return pg, nil
	}
	fail := func(err error) (*testenv.Postgres, error) {
		_ = pg.Close()
		return nil, err
	}
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	for name, value := range throwawaySettings {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET %s = '%s'", name, value)); err != nil {
			_ = conn.Close(ctx)
			return fail(fmt.Errorf("set %s: %w", name, err))
		}
	}
	_ = conn.Close(ctx)
	if err := pg.Stop(ctx); err != nil {
		return fail(fmt.Errorf("restart postgresql: %w", err))
	}
	if err := pg.Start(ctx); err != nil {
		return fail(fmt.Errorf("restart postgresql: %w", err))
	}
	return pg, nil
}

// serverFacts reads the version and the settings that shape read latency.
func serverFacts(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) map[string]string {
	facts := map[string]string{}
	var v string
	if conn.QueryRow(ctx, "SHOW server_version").Scan(&v) == nil {
		facts["pg_version"] = v
	}
	for _, name := range []string{"shared_buffers", "effective_cache_size", "work_mem", "random_page_cost", "jit"} {
		if conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v) == nil {
			facts["pg_"+name] = v
		}
	}
	return facts
}

// redact hides a password in a URL for printing.
func redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "(unparseable DATABASE_URL)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
