package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/audit"
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

// TestSubmittedByMigration: 000005 applies to a database that already
// holds events and notifications, keeps them, and leaves their
// submitted_by NULL (nobody recorded who submitted them); its down
// migration removes the columns again.
func TestSubmittedByMigration(t *testing.T) {
	ctx := t.Context()
	// Stored as a binary of schema version 4 (the one before 000005)
	// stores them: no submitted_by column.
	s, _, _ := migratedAfterRows(t, 4, "migration-000005")
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_events WHERE correlation_id = 'migration-000005'
		AND submitted_by IS NULL) + (SELECT count(*) FROM notification_audit WHERE notification_id = 'migration-000005'
		AND submitted_by IS NULL)`).Scan(&n))
	require.Equal(t, 2, n, "the rows stay, with no submitter")

	after := testEvent("migration-000005", time.Now())
	_, err := s.Write(ctx, []audit.Event{after}, nil)
	require.NoError(t, err)
	require.Equal(t, after.SubmittedBy, loadEvent(t, s.Pool(), after.EventID).SubmittedBy)
}

// downTo returns the SQL that takes a migrated database back to version:
// the down migrations above it, newest first, and the version recorded.
func downTo(t *testing.T, version uint) string {
	t.Helper()
	entries, err := migrationFiles.ReadDir("migrations")
	require.NoError(t, err)
	var sql []string
	for i := len(entries) - 1; i >= 0; i-- {
		name := entries[i].Name()
		var v uint
		if _, err := fmt.Sscanf(name, "%d_", &v); err != nil || v <= version || !strings.HasSuffix(name, ".down.sql") {
			continue
		}
		b, err := migrationFiles.ReadFile("migrations/" + name)
		require.NoError(t, err)
		sql = append(sql, string(b))
	}
	return strings.Join(append(sql, fmt.Sprintf("UPDATE schema_migrations SET version = %d", version)), ";\n")
}

// migratedAfterRows is a database where a binary of schema version stored
// an event and a notification of correlation corr (with only the columns
// every version has), before it was migrated to the latest version.
func migratedAfterRows(t *testing.T, version uint, corr string) (*Store, *testenv.Postgres, audit.Event) {
	t.Helper()
	ctx := t.Context()
	db := testenv.NewPostgres(t)
	_, err := Migrate(ctx, db.URL(), zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, db.Exec(ctx, downTo(t, version)))
	before := testEvent(corr, time.Now())
	require.NoError(t, db.Exec(ctx, fmt.Sprintf(`SELECT audit_events_ensure_partition(now());
		INSERT INTO audit_event_ids VALUES ('%[1]s', now());
		INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome,
			correlation_id, event_data) VALUES ('%[1]s', now(), '1', 't', 'gateway', 'a', 'success', '%[2]s', '{}');
		INSERT INTO notification_audit (notification_id, remediation_id, recipient, channel, message_summary, status, sent_at)
			VALUES ('%[2]s', 'r', 'x@example.com', 'email', 'm', 'sent', now())`, before.EventID, corr)))
	v, err := Migrate(ctx, db.URL(), zap.NewNop())
	require.NoError(t, err)
	require.Equal(t, latestVersion, v)
	return openStore(t, db.URL()), db, before
}

// TestLifecycleMigration: 000007 applies to a database that already holds
// events and notifications: their new columns read as never given
// (is_sensitive false, the rest null), the rows stay append-only, and the
// new values are stored from then on.
func TestLifecycleMigration(t *testing.T) {
	ctx := t.Context()
	s, db, before := migratedAfterRows(t, 5, "migration-000007")
	old := loadEvent(t, s.Pool(), before.EventID)
	require.False(t, old.IsSensitive)
	require.False(t, old.ActorIP.IsValid())
	require.Nil(t, old.ClusterID)
	require.Nil(t, old.RetentionDays)

	after := testEvent("migration-000007", time.Now())
	after.ActorIP, after.IsSensitive, after.RetentionDays = netip.MustParseAddr("192.0.2.1"), true, new(int32(30))
	_, err := s.Write(ctx, []audit.Event{after}, nil)
	require.NoError(t, err)
	stored := loadEvent(t, s.Pool(), after.EventID)
	require.Equal(t, after.ActorIP, stored.ActorIP)
	require.True(t, stored.IsSensitive)
	require.Equal(t, int32(30), *stored.RetentionDays)

	require.Error(t, db.Exec(ctx, `UPDATE notification_audit SET notification_id = 'x' WHERE notification_id = 'migration-000007'`))
	require.NoError(t, db.Exec(ctx, `UPDATE notification_audit SET channel = 'teams' WHERE notification_id = 'migration-000007'`),
		"delivery columns may change, and teams is a channel now")
}

// TestHashChainMigration: 000006 applies to a database that already holds
// events, leaves their chain fields null (they belong to no chain), and
// the next event of their correlation_id starts its chain at 1; its down
// migration removes the chain again.
func TestHashChainMigration(t *testing.T) {
	ctx := t.Context()
	db := testenv.NewPostgres(t)
	_, err := Migrate(ctx, db.URL(), zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, db.Exec(ctx, downTo(t, 5)))

	corr := "migration-000006"
	before := testEvent(corr, time.Now())
	// As a binary of version 5 stores it: no chain columns.
	require.NoError(t, db.Exec(ctx, fmt.Sprintf(`SELECT audit_events_ensure_partition(now());
		INSERT INTO audit_event_ids VALUES ('%[1]s', now());
		INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome,
			correlation_id, event_data, submitted_by) VALUES ('%[1]s', now(), '1', 't', 'gateway', 'a', 'success', '%[2]s', '{}', 'x')`,
		before.EventID, corr)))

	v, err := Migrate(ctx, db.URL(), zap.NewNop())
	require.NoError(t, err)
	require.Equal(t, latestVersion, v)
	keys := newChainKeys(t, "k1")
	s := openChainStore(t, db.URL(), keys)
	var unchained int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND chain_seq IS NULL
		AND previous_event_hash IS NULL AND event_hash IS NULL AND hash_key_id IS NULL AND hash_version IS NULL`, before.EventID).Scan(&unchained))
	require.Equal(t, 1, unchained, "the row stays, without a chain")

	after := testEvent(corr, time.Now())
	_, err = s.Write(ctx, []audit.Event{after}, nil)
	require.NoError(t, err)
	chain := requireChain(t, s.Pool(), keys, corr, 1)
	require.Equal(t, after.EventID, chain[0].EventID)

	require.NoError(t, db.Exec(ctx, downTo(t, 5)))
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_name IN ('chain_heads', 'integrity_checkpoints')`).Scan(&n))
	require.Zero(t, n)
}
