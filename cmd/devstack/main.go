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

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/testenv"
)

func main() {
	binDir := flag.String("bin-dir", "bin", "directory holding the built ingest-api, writer and dlq-replayer")
	httpAddr := flag.String("http-addr", "127.0.0.1:8080", "address of the ingest API")
	metricsAddr := flag.String("writer-metrics-addr", "127.0.0.1:9090", "metrics and health address of the writer")
	replayerAddr := flag.String("replayer-metrics-addr", "127.0.0.1:9091", "metrics and health address of the dlq-replayer daemon")
	apiMetricsAddr := flag.String("api-metrics-addr", "127.0.0.1:9092", "metrics and health address of the ingest API")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binDir, *httpAddr, *apiMetricsAddr, *metricsAddr, *replayerAddr); err != nil {
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

func run(ctx context.Context, binDir, httpAddr, apiMetricsAddr, metricsAddr, replayerAddr string) error {
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

	token, tokensFile, err := devToken()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(tokensFile))
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
	// So are the hash chain key and the checkpoint and export signing keys.
	integrityKeys, err := testenv.GenerateIntegrityKeys(secrets)
	if err != nil {
		return fmt.Errorf("integrity keys: %w", err)
	}

	common := []string{
		"KAFKA_BROKERS=" + strings.Join(broker.Brokers(), ","),
		"DATABASE_URL=" + db.URL(),
		"SOURCE_KEYS_FILE=" + sourceKeys,
		"LOG_FORMAT=console",
	}
	services := []service{
		{name: "ingest-api", env: append(append([]string{"HTTP_ADDR=" + httpAddr, "METRICS_ADDR=" + apiMetricsAddr,
			"AUTH_TOKENS_FILE=" + tokensFile, "SHUTDOWN_DELAY=0s"}, integrityKeys.APIEnv()...), common...)},
		{name: "writer", env: append(append([]string{"METRICS_ADDR=" + metricsAddr, "CHECKPOINT_INTERVAL=10s"}, integrityKeys.Env()...), common...)},
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
  ingest API      %s              health %s/health
  API metrics     http://%s/metrics
  OpenAPI         %s/openapi.yaml
  web console     %s/ui/   (sign in with the API token below)
  API token       %s
                  (every scope; tokens file %s)
  writer          http://%s/metrics   health http://%s/health
  dlq-replayer    http://%s/metrics   health http://%s/health   (daemon, every 30s)
  source keys     %s   (signs submitted_by; removed on exit)
  integrity keys  %s   (the hash chain; removed on exit)
  checkpoints     signed every 10s, public key %s
  exports         signed, public key %s

Try:
  export AUDITSTREAM_TOKEN=%s
  curl -i -X POST %s/api/v1/audit/events -H "Authorization: Bearer $AUDITSTREAM_TOKEN" -H 'Content-Type: application/json' -d '{
    "version": "1.0", "event_type": "gateway.signal.received",
    "event_timestamp": "%s", "event_category": "gateway",
    "event_action": "received", "event_outcome": "success",
    "correlation_id": "rr-2025-001", "event_data": {"signal": "cpu-high"}}'

Then see it stored:
  psql '%s' -c 'SELECT event_id, event_type, event_timestamp FROM audit_events'
  curl -s -H "Authorization: Bearer $AUDITSTREAM_TOKEN" '%s/api/v1/audit/events?correlation_id=rr-2025-001'

Verify its chain, export it signed and verify the export offline:
  curl -s -X POST %s/api/v1/audit/verify-chain -H "Authorization: Bearer $AUDITSTREAM_TOKEN" -d '{"correlation_id": "rr-2025-001"}'
  curl -s -H "Authorization: Bearer $AUDITSTREAM_TOKEN" '%s/api/v1/audit/export?correlation_id=rr-2025-001' > export.ndjson
  %s/auditctl verify-export export.ndjson --public-key %s

More keys (add the printed entry to the tokens file; it is reloaded by itself):
  %s/auditctl token --name my-service --scopes audit:write

Dead letters:
  KAFKA_BROKERS=%s %s/dlq-replayer list

`, strings.Join(broker.Brokers(), ","), db.URL(), base, base, apiMetricsAddr, base, base, token, tokensFile,
		metricsAddr, metricsAddr, replayerAddr, replayerAddr, sourceKeys, integrityKeys.KeysFile, integrityKeys.PublicKeyFile,
		integrityKeys.ExportPublicKeyFile, token, base, time.Now().UTC().Format("2006-01-02T15:04:05Z"), db.URL(), base,
		base, base, binDir, integrityKeys.ExportPublicKeyFile, binDir, strings.Join(broker.Brokers(), ","), binDir)

	var runErr error
	select {
	case <-ctx.Done():
		fmt.Println("\ndevstack: stopping")
	case runErr = <-exited:
	}
	stopAll(procs)
	return runErr
}

// devToken writes a tokens file with one development key holding every
// scope and returns the key: the dev stack runs with access control on,
// as production does, and prints the key to use.
func devToken() (token, path string, err error) {
	dir, err := os.MkdirTemp("", "auditstream-dev-")
	if err != nil {
		return "", "", err
	}
	token, entry, err := auth.NewToken("developer", auth.AllScopes, nil)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "tokens.yaml")
	if err := (auth.TokensFile{Tokens: []auth.TokenEntry{entry}}).WriteFile(path); err != nil {
		return "", "", fmt.Errorf("write the development tokens file: %w", err)
	}
	return token, path, nil
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
