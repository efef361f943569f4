package testenv

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// RunUntilExit runs the binary at path with env added to the test's own
// environment and waits at most within for it to exit, for tests of a
// binary that must give up. It returns the exit code and the standard
// error; a binary still running after within fails the test (and is
// killed).
func RunUntilExit(t TB, within time.Duration, path string, env ...string) (code int, stderr string) {
	t.Helper()
	var stdout, errOut Output
	cmd := exec.Command(path)
	// Later entries win over the test's environment.
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &errOut
	// If the test binary dies first, the kernel kills the child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			return 0, errOut.String()
		case errors.As(err, &exitErr):
			return exitErr.ExitCode(), errOut.String()
		default:
			t.Fatalf("wait for %s: %v", path, err)
		}
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("%s still running after %s\nstderr:\n%s\nstdout:\n%s", path, within, errOut.Tail(8<<10), stdout.Tail(8<<10))
	}
	return -1, "" // not reached: Fatalf ends the test
}
