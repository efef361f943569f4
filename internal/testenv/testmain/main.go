// Package testmain is the one TestMain of auditstream's test packages: it
// starts the services a package's tests share, runs the tests, closes
// everything in reverse order and checks that no goroutine was left
// behind.
//
// It is apart from testenv because it needs the testing package and goleak,
// which testenv must not link: devstack and auditbench start the same
// services outside tests.
package testmain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditstream/auditstream/internal/testenv"
)

// Services are the shared services Main starts before setup.
type Services uint8

const (
	// Kafka is one broker for the package (testenv.StartKafka).
	Kafka Services = 1 << iota
	// Postgres is one database for the package (testenv.StartPostgres).
	Postgres
	// Both is a broker and a database.
	Both = Kafka | Postgres
)

// Shared is what a package's tests share: the services Main started, plus
// whatever the package's setup builds on them.
type Shared struct {
	Kafka    *testenv.Kafka    // nil unless Kafka was asked for
	Postgres *testenv.Postgres // nil unless Postgres was asked for
	closers  []func()
}

// Cleanup registers f to run after the tests, before the services stop;
// cleanups run in reverse order, like t.Cleanup.
func (s *Shared) Cleanup(f func()) { s.closers = append(s.closers, f) }

// Build compiles the module's command name (a directory under cmd/) into a
// directory removed after the tests, and returns the binary's path: the
// binary operators run, for process tests.
func (s *Shared) Build(ctx context.Context, name string) (string, error) {
	return s.BuildTagged(ctx, name, "")
}

// BuildTagged is Build with build tags (testenv.BuildTagged).
func (s *Shared) BuildTagged(ctx context.Context, name, tags string) (string, error) {
	dir, err := os.MkdirTemp("", name+"-test-")
	if err != nil {
		return "", err
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := testenv.BuildTagged(ctx, dir, tags, name); err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// Main is the TestMain of a test package:
//
//	func TestMain(m *testing.M) {
//		os.Exit(testmain.Main(m, "store tests", testmain.Postgres, func(ctx context.Context, s *testmain.Shared) error {
//			pg = s.Postgres
//			_, err := store.Migrate(ctx, pg.URL(), zap.NewNop())
//			return err
//		}))
//	}
//
// It starts the services asked for, lets setup (which may be nil) prepare
// the rest, bounded by a few minutes, enough to build binaries, runs the
// tests, closes everything in reverse order and then checks that no
// goroutine was left behind. It returns the exit code; failures are
// reported on stderr under name.
func Main(m *testing.M, name string, services Services, setup func(ctx context.Context, s *Shared) error) int {
	code := run(m, name, services, setup)
	if code == 0 {
		if err := goleak.Find(LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "%s: leaked goroutines: %v\n", name, err)
			code = 1
		}
	}
	return code
}

func run(m *testing.M, name string, services Services, setup func(ctx context.Context, s *Shared) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := &Shared{}
	defer func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
	}()
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	var err error
	if services&Kafka != 0 {
		if s.Kafka, err = testenv.StartKafka(ctx, nil); err != nil {
			return fail(err)
		}
		s.Cleanup(func() { _ = s.Kafka.Close() })
	}
	if services&Postgres != 0 {
		if s.Postgres, err = testenv.StartPostgres(ctx); err != nil {
			return fail(err)
		}
		s.Cleanup(func() {
			if err := s.Postgres.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			}
		})
	}
	if setup != nil {
		if err := setup(ctx, s); err != nil {
			return fail(err)
		}
	}
	return m.Run()
}
