package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/testenv"
)

// TestRunAsAUserWould starts the real binary with only KAFKA_BROKERS,
// DATABASE_URL and HTTP_ADDR set (plus a short SHUTDOWN_DELAY), writes an
// event through it, and stops it with SIGTERM: readiness turns 503 while it
// keeps serving, then it exits 0.
func TestRunAsAUserWould(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	require.NoError(t, testenv.BuildCommands(ctx, dir, "ingest-api"))
	k := testenv.NewKafka(t, nil)
	pg := testenv.NewPostgres(t)
	addr := testenv.NewAddr(t)

	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(dir, "ingest-api"))
	cmd.Env = append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(k.Brokers(), ","),
		"DATABASE_URL="+pg.URL(),
		"HTTP_ADDR="+addr,
		"SHUTDOWN_DELAY=1s",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("ingest-api output:\n%s", out.String())
		}
	})

	base := "http://" + addr
	testenv.Await(t, 30*time.Second, "ready", func() (bool, string) {
		code, err := get(base + "/health/ready")
		return code == http.StatusOK, fmt.Sprint(code, err)
	})

	event := fmt.Sprintf(`{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":%q,
		"event_category":"gateway","event_action":"received","event_outcome":"success",
		"correlation_id":"rr-2025-001","event_data":{"signal":"cpu-high"}}`, time.Now().UTC().Format(time.RFC3339))
	res, err := http.Post(base+"/api/v1/audit/events", "application/json", strings.NewReader(event))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	testenv.Await(t, 5*time.Second, "readiness 503 while still serving", func() (bool, string) {
		code, err := get(base + "/health/ready")
		return code == http.StatusServiceUnavailable, fmt.Sprint(code, err)
	})
	select {
	case err := <-exited:
		require.NoError(t, err, "exit status")
	case <-time.After(30 * time.Second):
		t.Fatal("ingest-api did not exit after SIGTERM")
	}
	require.Contains(t, out.String(), "ingest-api stopped")
}

func get(url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}
