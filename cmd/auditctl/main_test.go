package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

var bin string

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "auditctl tests", 0, func(ctx context.Context, s *testmain.Shared) error {
		var err error
		bin, err = s.Build(ctx, "auditctl")
		return err
	}))
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run auditctl: %v", err)
	}
	return code, out.String(), errOut.String()
}
