package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Shared is what a package's tests share: one broker and one database,
// plus whatever the package's setup builds on them.
type Shared struct {
	Kafka    *Kafka
	Postgres *Postgres
	closers  []func()
}

// Cleanup registers f to run after the tests, before the broker and the
// database stop; cleanups run in reverse order, like t.Cleanup.
func (s *Shared) Cleanup(f func()) { s.closers = append(s.closers, f) }

// Main is the TestMain of a package whose tests share a broker and a
// database: it starts both, lets setup prepare the rest (bounded by a few
// minutes, enough to build binaries), runs the tests, closes everything in
// reverse order and then checks that no goroutine was left behind. It
// returns the exit code; failures are reported on stderr under name.
func Main(m *testing.M, name string, setup func(ctx context.Context, s *Shared) error) int {
	code := mainRun(m, name, setup)
	if code == 0 {
		if err := goleak.Find(LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "%s: leaked goroutines: %v\n", name, err)
			code = 1
		}
	}
	return code
}

func mainRun(m *testing.M, name string, setup func(ctx context.Context, s *Shared) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := &Shared{}
	defer func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
	}()
	var err error
	if s.Kafka, err = StartKafka(ctx, nil); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	s.Cleanup(func() { _ = s.Kafka.Close() })
	if s.Postgres, err = StartPostgres(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	s.Cleanup(func() { _ = s.Postgres.Close() })
	if err := setup(ctx, s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return m.Run()
}
