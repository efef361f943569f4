// Command devstack runs the whole auditstream pipeline on one machine for
// development (`make dev`): an in-process Kafka-protocol broker (franz-go's
// kfake, records in memory only) and a throwaway PostgreSQL cluster, or the
// services named by KAFKA_BROKERS / DATABASE_URL, plus the real binaries as
// child processes. Ctrl-C stops everything and removes the throwaway data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/testenv"
)

func main() {
	binDir := flag.String("bin-dir", "bin", "directory holding the built ingest-api, writer and dlq-replayer")
	httpAddr := flag.String("http-addr", "127.0.0.1:8080", "address of the ingest API")
	metricsAddr := flag.String("writer-metrics-addr", "127.0.0.1:9090", "metrics and health address of the writer")
	replayerAddr := flag.String("replayer-metrics-addr", "127.0.0.1:9091", "metrics and health address of the dlq-replayer daemon")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binDir, *httpAddr, *metricsAddr, *replayerAddr); err != nil {
		fmt.Fprintf(os.Stderr, "devstack: %v\n", err)
		os.Exit(1)
	}
}

// service is one binary of the pipeline run as a child process.
type service struct {
	name string
	args []string
	env  []string
}

func run(ctx context.Context, binDir, httpAddr, metricsAddr, replayerAddr string) error {
	topics := map[string]int32{"audit.events": 3, "audit.notifications": 3, "audit.dlq": 1, "audit.dlq.parked": 1}
	broker, err := testenv.StartKafka(ctx, topics)
	if err != nil {
		return fmt.Errorf("start kafka: %w", err)
	}
	defer broker.Close()
	db, err := testenv.StartPostgres(ctx)
	if err != nil {
		return fmt.Errorf("start postgresql: %w", err)
	}
	defer db.Close()

	// The key that proves submitted_by, shared by ingest-api and the
	// writer, is made for this run and removed with it.
	secrets, err := os.MkdirTemp("", "devstack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(secrets)
	sourceKeys := filepath.Join(secrets, "source-keys.yaml")
	if err := keyring.Generate(sourceKeys, "dev"); err != nil {
		return fmt.Errorf("source keys: %w", err)
	}

	common := []string{
		"KAFKA_BROKERS=" + strings.Join(broker.Brokers(), ","),
		"DATABASE_URL=" + db.URL(),
		"SOURCE_KEYS_FILE=" + sourceKeys,
		"LOG_FORMAT=console",
	}
	services := []service{
		{name: "ingest-api", env: append([]string{"HTTP_ADDR=" + httpAddr, "SHUTDOWN_DELAY=0s"}, common...)},
		{name: "writer", env: append([]string{"METRICS_ADDR=" + metricsAddr}, common...)},
		{name: "dlq-replayer", args: []string{"run"}, env: append([]string{"METRICS_ADDR=" + replayerAddr}, common...)},
	}

	procs := make([]*exec.Cmd, 0, len(services))
	exited := make(chan error, len(services))
	for _, s := range services {
		cmd := exec.Command(filepath.Join(binDir, s.name), s.args...)
		cmd.Env = append(os.Environ(), s.env...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		// Children die with us even if we are killed without cleanup.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			stopAll(procs)
			return fmt.Errorf("start %s: %w", s.name, err)
		}
		procs = append(procs, cmd)
		go func() { exited <- fmt.Errorf("%s exited: %w", s.name, cmd.Wait()) }()
	}

	base := "http://" + httpAddr
	fmt.Printf(`
auditstream dev stack is running (Ctrl-C stops it all)

  Kafka brokers   %s   (embedded broker: records live in memory only)
  PostgreSQL      %s
  ingest API      %s
  metrics         %s/metrics      health %s/health
  OpenAPI         %s/openapi.yaml
  writer          http://%s/metrics   health http://%s/health
  dlq-replayer    http://%s/metrics   health http://%s/health   (daemon, every 30s)
  source keys     %s   (signs submitted_by; removed on exit)

Try:
  curl -i -X POST %s/api/v1/audit/events -H 'Content-Type: application/json' -d '{
    "version": "1.0", "event_type": "gateway.signal.received",
    "event_timestamp": "%s", "event_category": "gateway",
    "event_action": "received", "event_outcome": "success",
    "correlation_id": "rr-2025-001", "event_data": {"signal": "cpu-high"}}'

Then see it stored:
  psql '%s' -c 'SELECT event_id, event_type, event_timestamp FROM audit_events'
  curl -s '%s/api/v1/audit/events?correlation_id=rr-2025-001'

Dead letters:
  KAFKA_BROKERS=%s %s/dlq-replayer list

`, strings.Join(broker.Brokers(), ","), db.URL(), base, base, base, base, metricsAddr, metricsAddr, replayerAddr, replayerAddr, sourceKeys, base,
		time.Now().UTC().Format("2006-01-02T15:04:05Z"), db.URL(), base, strings.Join(broker.Brokers(), ","), binDir)

	var runErr error
	select {
	case <-ctx.Done():
		fmt.Println("\ndevstack: stopping")
	case runErr = <-exited:
	}
	stopAll(procs)
	return runErr
}

// stopAll sends SIGTERM so each binary drains and commits, then waits a
// bounded time before killing what is left.
func stopAll(procs []*exec.Cmd) {
	for _, p := range procs {
		if p.ProcessState == nil {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range procs {
		for p.ProcessState == nil && time.Now().Before(deadline) {
			if err := p.Process.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = p.Process.Kill()
	}
}
