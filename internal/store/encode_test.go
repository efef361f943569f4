package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
)

// TestWriteUnencodableRowIsPoison: a value that pgx refuses to encode (an
// escalation level beyond smallint, which validation would have stopped)
// aborts the COPY with SQLSTATE 57014, an outage code; the store names the
// row's fault instead, as poison, so that the writer isolates it rather
// than retrying the batch for ever.
func TestWriteUnencodableRowIsPoison(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	bad := testNotification("unencodable-" + uuid.NewString())
	bad.EscalationLevel = ptr(int32(40_000))
	good := testNotification("encodable-" + uuid.NewString())

	_, err := s.Write(ctx, nil, []audit.Notification{good, bad})
	require.Error(t, err)
	require.Equal(t, errclass.Poison, errclass.Of(err), "%v", err)
	require.Contains(t, err.Error(), "escalation_level")

	res, err := s.Write(ctx, nil, []audit.Notification{good})
	require.NoError(t, err, "the row alone is stored: nothing was left behind by the aborted COPY")
	require.Equal(t, WriteResult{Notifications: 1}, res)
}

// TestCopyTypesMatchSchema: the column types the store checks a failed
// COPY's rows against are those of the migrated tables.
func TestCopyTypesMatchSchema(t *testing.T) {
	s := openStore(t, pg.URL())
	ctx := t.Context()
	types := func(q pgx.Tx, table string, columns []string) []uint32 {
		t.Helper()
		out := make([]uint32, len(columns))
		for i, c := range columns {
			require.NoError(t, q.QueryRow(ctx, `SELECT atttypid FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2`,
				table, c).Scan(&out[i]), "%s.%s", table, c)
		}
		return out
	}
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, createNotificationStage)
	require.NoError(t, err)
	require.Equal(t, types(tx, "audit_events", eventColumns), eventOIDs, "audit_events columns %v", eventColumns)
	require.Equal(t, types(tx, "notification_audit_stage", notificationColumns), notificationStageOIDs,
		"notification_audit_stage columns %v", notificationColumns)
}

func TestUnencodable(t *testing.T) {
	row := EventRow(ptr(testEvent("c", time.Now())))
	require.NoError(t, unencodable([][]any{row}, eventColumns, eventOIDs))

	bad := append([]any(nil), row...)
	bad[0] = struct{}{}
	err := unencodable([][]any{row, bad}, eventColumns, eventOIDs)
	var rerr *rowError
	require.ErrorAs(t, err, &rerr)
	require.Equal(t, eventColumns[0], rerr.Column)

	// However pgx reported the aborted COPY, the row's fault wins.
	aborted := fmt.Errorf("write batch: %w", errors.Join(err, &pgconn.PgError{Code: "57014"}))
	require.Equal(t, errclass.Poison, Classify(aborted))
}
