package store

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// pg is the database shared by the tests of this package, migrated once in
// TestMain. Tests that stop the server or need an empty database start a
// private one with testenv.NewPostgres.
var pg *testenv.Postgres

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "store tests", testmain.Postgres, func(ctx context.Context, s *testmain.Shared) error {
		pg = s.Postgres
		_, err := Migrate(ctx, pg.URL(), zap.NewNop())
		return err
	}))
}

// openStore opens a Store on url that the test closes when it ends.
func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{URL: url, ConnectTimeout: 2 * time.Second, Log: zap.NewNop()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}
