package ui_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// shared is what the browser tests use: the real binaries, one broker and
// one PostgreSQL.
var shared struct {
	bin string
	env *testmain.Shared
}

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "console tests", testmain.Both, func(ctx context.Context, s *testmain.Shared) error {
		dir, err := os.MkdirTemp("", "console-bin-")
		if err != nil {
			return err
		}
		s.Cleanup(func() { _ = os.RemoveAll(dir) })
		shared.bin, shared.env = dir, s
		return testenv.BuildCommands(ctx, dir, "ingest-api", "writer")
	}))
}

func binary(name string) string { return filepath.Join(shared.bin, name) }
