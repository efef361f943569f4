package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BuildCommands compiles the module's commands (directory names under
// cmd/) into dir with `go build`, so tests and benchmarks run the binaries
// operators run rather than a test binary calling main.
func BuildCommands(ctx context.Context, dir string, names ...string) error {
	return BuildTagged(ctx, dir, "", names...)
}

// BuildTagged is BuildCommands with build tags (comma-separated), for the
// process tests of a fault that only a tagged build can inject (see
// store.FaultUnencodable).
func BuildTagged(ctx context.Context, dir, tags string, names ...string) error {
	args := []string{"build"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "-o", dir+string(filepath.Separator))
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	_, err := goCommand(ctx, args...)
	return err
}

// goCommand runs the go tool in the module's root directory and returns
// its standard output; the error carries its standard error.
func goCommand(ctx context.Context, args ...string) ([]byte, error) {
	// go test puts its own toolchain first on PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("find the go tool: %w", err)
	}
	gomod, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Await polls cond every 20 ms until it holds, and fails the test with
// cond's last status when timeout passes first or the test ends. It is how
// tests wait for the pipeline: on an observed condition, never a sleep.
func Await(t TB, timeout time.Duration, what string, cond func() (ok bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, status)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s: %s", what, status)
		case <-tick.C:
		}
	}
}
