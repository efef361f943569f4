package integrity_test

import (
	"context"
	"os"
	"testing"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
	"go.uber.org/zap"
)

// pg is the database the round trips through jsonb and audit_events use.
var pg *testenv.Postgres

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "integrity tests", testmain.Postgres, func(ctx context.Context, s *testmain.Shared) error {
		pg = s.Postgres
		_, err := store.Migrate(ctx, pg.URL(), zap.NewNop())
		return err
	}))
}
