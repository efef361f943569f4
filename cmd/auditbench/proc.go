package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/auditstream/auditstream/internal/testenv"
)

// Processes: the stages run the real binaries (go build into a temporary
// directory, once per run) as child processes and watch them from /proc.

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds cmd/ingest-api and cmd/writer into a temporary directory
// and returns it.
func binaries(logf func(string, ...any)) (string, error) {
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "auditbench-bin-")
		if buildErr != nil {
			return
		}
		start := time.Now()
		if buildErr = testenv.BuildCommands(context.Background(), buildDir, "ingest-api", "writer"); buildErr != nil {
			return
		}
		logf("built ingest-api and writer into %s in %s", buildDir, time.Since(start).Round(time.Millisecond))
	})
	return buildDir, buildErr
}

// removeBinaries deletes the build directory and the processes' logs (at
// exit).
func removeBinaries() {
	for _, d := range []string{buildDir, logDir} {
		if d != "" {
			_ = os.RemoveAll(d)
		}
	}
}

// proc is a child process sampled from /proc until it exits.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *procLog
	// ops is the base URL of its METRICS_ADDR, where it has one.
	ops string

	mu      sync.Mutex
	hwm     int64 // bytes, last VmHWM read
	cpu     time.Duration
	samples []rssSample
	exited  chan struct{}
	waitErr error
}

// rssSample is the resident set size at a moment, for growth over a run.
type rssSample struct {
	at  time.Time
	rss int64 // bytes, VmRSS
}

// startProc starts path with the environment added to ours and samples its
// VmHWM every 20 ms and VmRSS every second until it exits.
func startProc(name, path string, args []string, env ...string) (*proc, error) {
	log, err := newProcLog(name)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, log: log, exited: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = log.f, log.f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		log.remove()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pid := p.cmd.Process.Pid
	go func() {
		lastRSS := time.Time{}
		for {
			st, ok := readStatus(pid)
			if !ok {
				return
			}
			p.mu.Lock()
			p.hwm = max(p.hwm, st.hwm)
			if c := procCPU(pid); c > 0 {
				p.cpu = c
			}
			if time.Since(lastRSS) >= time.Second {
				lastRSS = time.Now()
				p.samples = append(p.samples, rssSample{at: lastRSS, rss: st.rss})
			}
			p.mu.Unlock()
			select {
			case <-p.exited:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// procLog is a child's stdout and stderr: a file, as a container runtime
// keeps them. The API logs every request at the default level; piping that
// into this process would cost it CPU on the cores the API is measured on,
// and memory for every line. Only the tail is ever read.
type procLog struct{ f *os.File }

var (
	logDirOnce sync.Once
	logDir     string
	logDirErr  error
)

func newProcLog(name string) (*procLog, error) {
	logDirOnce.Do(func() { logDir, logDirErr = os.MkdirTemp("", "auditbench-logs-") })
	if logDirErr != nil {
		return nil, logDirErr
	}
	f, err := os.CreateTemp(logDir, name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("log file of %s: %w", name, err)
	}
	return &procLog{f: f}, nil
}

// Tail returns about the last n bytes, starting at a line.
func (l *procLog) Tail(n int64) string {
	st, err := l.f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := l.f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return string(buf)
}

// String returns the whole log.
func (l *procLog) String() string { return l.Tail(math.MaxInt64) }

func (l *procLog) remove() {
	_ = l.f.Close()
	_ = os.Remove(l.f.Name())
}

// stop sends SIGTERM and waits (then kills) for the process; it returns
// the process's error unless it exited cleanly.
func (p *proc) stop() error {
	select {
	case <-p.exited:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
	return p.exitErr()
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() error {
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.exited
	return nil
}

func (p *proc) exitErr() error {
	if p.waitErr != nil {
		return fmt.Errorf("%s: %w; log tail:\n%s", p.name, p.waitErr, p.log.Tail(4000))
	}
	return nil
}

// done reports an error once the process has exited on its own.
func (p *proc) done() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited early: %v; log tail:\n%s", p.name, p.waitErr, p.log.Tail(4000))
	default:
		return nil
	}
}

// usage returns the peak RSS (VmHWM, bytes) and CPU time so far, or, after
// exit, for the whole run (CPU then from the reaped child's rusage).
func (p *proc) usage() (peak int64, cpu time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		if ps := p.cmd.ProcessState; ps != nil {
			return p.hwm, ps.UserTime() + ps.SystemTime()
		}
	default:
	}
	return p.hwm, p.cpu
}

func (p *proc) rssSamples() []rssSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rssSample(nil), p.samples...)
}

// procResults are the peak RSS and CPU rows of a process of a stage.
func procResults(stage string, p *proc, note string) []Result {
	peak, cpu := p.usage()
	base := stage + ".proc." + p.name
	return []Result{
		{Name: base + ".peak_rss", Value: float64(peak) / (1 << 20), Unit: "MiB",
			Notes: "VmHWM from /proc/<pid>/status, sampled every 20 ms until exit; " + note},
		{Name: base + ".cpu", Value: cpu.Seconds(), Unit: "s", Notes: "utime+stime of the reaped child (rusage), whole process life"},
	}
}

type procStatus struct{ hwm, rss int64 }

// readStatus reads VmHWM and VmRSS of pid; ok is false once it is gone (a
// zombie has no Vm lines).
func readStatus(pid int) (procStatus, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procStatus{}, false
	}
	var st procStatus
	found := false
	for line := range strings.SplitSeq(string(raw), "\n") {
		kb := func(rest string) int64 {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v << 10
		}
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			st.hwm, found = kb(rest), true
		} else if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			st.rss = kb(rest)
		}
	}
	return st, found
}

// procCPU returns utime+stime of pid (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	f := strings.Fields(s[i+2:]) // from field 3 (state) on
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	k, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(u+k) * 10 * time.Millisecond
}

// waitHTTP polls url until it answers 200, the process exits, or timeout.
func waitHTTP(ctx context.Context, url string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		if p != nil {
			if err := p.done(); err != nil {
				return err
			}
		}
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			tail := ""
			if p != nil {
				tail = "; log tail:\n" + p.log.Tail(4000)
			}
			return fmt.Errorf("%s not ready within %s (last error %v)%s", url, timeout, err, tail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metricValue fetches a Prometheus text endpoint and returns the value of
// the sample line starting with name (labels included).
func metricValue(c *http.Client, url, name string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	s := "\n" + string(body)
	i := strings.Index(s, "\n"+name+" ")
	if i < 0 {
		return 0, errors.New("metric " + name + " not found")
	}
	rest := s[i+len(name)+2:]
	if j := strings.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	return strconv.ParseFloat(strings.TrimSpace(rest), 64)
}
