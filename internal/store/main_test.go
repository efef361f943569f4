package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/testenv"
)

// pg is the database shared by the tests of this package, migrated once in
// TestMain. Tests that stop the server or need an empty database start a
// private one with testenv.NewPostgres.
var pg *testenv.Postgres

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if pg, err = testenv.StartPostgres(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := Migrate(ctx, pg.URL(), zap.NewNop()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = pg.Close()
		return 1
	}
	code := m.Run()
	if err := pg.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
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
