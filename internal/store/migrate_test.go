package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/backoff"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestMigrateMarksWhatCannotHeal: the start-up failures no retry can fix
// are marked permanent, so MigrateRetrying returns them at once; an
// unreachable server is not.
func TestMigrateMarksWhatCannotHeal(t *testing.T) {
	db := testenv.NewPostgres(t)
	ctx := t.Context()
	_, err := Migrate(ctx, db.URL(), zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, db.Exec(ctx, `CREATE ROLE locked NOLOGIN`))

	unknownRole, err := db.URLAs("nobody", "")
	require.NoError(t, err)
	lockedRole, err := db.URLAs("locked", "")
	require.NoError(t, err)
	missingDB, err := db.URLAs("", "no_such_database")
	require.NoError(t, err)

	tests := []struct {
		name      string
		url       string
		dirty     bool
		permanent bool
		reason    string
	}{
		{"dirty schema", db.URL(), true, true, "repair the schema by hand"},
		{"unknown role", unknownRole, false, true, `role "nobody" does not exist`},
		{"role may not log in", lockedRole, false, true, `not permitted to log in`},
		{"missing database", missingDB, false, true, `database "no_such_database" does not exist`},
		{"malformed url", "postgres://%zz", false, true, "parse database url"},
		{"unreachable server", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1", false, false, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.dirty {
				require.NoError(t, db.Exec(ctx, `UPDATE schema_migrations SET dirty = true`))
				defer func() { require.NoError(t, db.Exec(ctx, `UPDATE schema_migrations SET dirty = false`)) }()
			}
			_, err := Migrate(ctx, tt.url, zap.NewNop())
			require.ErrorContains(t, err, tt.reason)
			require.Equal(t, tt.permanent, backoff.IsPermanent(err), "permanent: %v", err)
			if !tt.permanent {
				return
			}
			start := time.Now()
			err = MigrateRetrying(ctx, tt.url, zap.NewNop())
			require.ErrorContains(t, err, tt.reason)
			require.Less(t, time.Since(start), 5*time.Second, "no retries")
		})
	}
}

func TestMigrateRetryingRetriesAnUnreachableServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	core, logs := observer.New(zap.WarnLevel)
	err := MigrateRetrying(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1", zap.New(core))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, logs.FilterMessage("schema migration failed, retrying").Len(), 2)
}
