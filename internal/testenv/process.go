package testenv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Process is a binary a test started: its output, and whether it still
// runs. It is killed, if still running, when the test ends, and its output
// is logged if the test failed.
type Process struct {
	Stdout, Stderr *Output

	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// StartProcess runs the binary at path with args, and env added to the
// test's own environment (later entries win).
func StartProcess(t TB, path string, args []string, env ...string) *Process {
	t.Helper()
	p := &Process{Stdout: &Output{}, Stderr: &Output{}, name: filepath.Base(path), exited: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	// If the test binary dies first, the kernel kills the child too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // no-op once it has exited
		<-p.exited
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s %v (pid %d, %s) ----\nstderr:\n%s\nstdout:\n%s", p.name, args, p.cmd.Process.Pid, p.State(), p.Stderr.Tail(32<<10), p.Stdout.Tail(32<<10))
		}
	})
	return p
}

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the process's id, for what /proc tells about it.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// State is "running", or how the process ended, for failure messages.
func (p *Process) State() string {
	if p.Running() {
		return "running"
	}
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill ends the process with SIGKILL, cutting off whatever it was doing,
// and waits until it is gone.
func (p *Process) Kill(t TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.exited
}

// AwaitReady waits at most within for url to answer 200 (a binary's
// /health/ready), failing the test if the process exits first.
func (p *Process) AwaitReady(t TB, within time.Duration, url string) {
	t.Helper()
	hc := http.Client{Timeout: time.Second}
	Await(t, within, url, func() (bool, string) {
		if !p.Running() {
			t.Fatalf("%s exited during start-up\nstderr:\n%s", p.name, p.Stderr.Tail(8<<10))
		}
		res, err := hc.Get(url)
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})
}

// WaitExit waits at most within for the process to exit and returns its
// exit code. A process still running then is killed and fails the test.
func (p *Process) WaitExit(t TB, within time.Duration) int {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("%s still running after %s\nstderr:\n%s\nstdout:\n%s", p.name, within, p.Stderr.Tail(8<<10), p.Stdout.Tail(8<<10))
	}
	code, err := exitCode(p.err)
	if err != nil {
		t.Fatalf("wait for %s: %v", p.name, err)
	}
	return code
}

func exitCode(err error) (int, error) {
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), nil
	default:
		return -1, fmt.Errorf("not an exit: %w", err)
	}
}

// RunUntilExit runs the binary at path with env added to the test's own
// environment and waits at most within for it to exit, for tests of a
// binary that must give up. It returns the exit code and the standard
// error; a binary still running after within fails the test (and is
// killed).
func RunUntilExit(t TB, within time.Duration, path string, env ...string) (code int, stderr string) {
	t.Helper()
	p := StartProcess(t, path, nil, env...)
	return p.WaitExit(t, within), p.Stderr.String()
}
