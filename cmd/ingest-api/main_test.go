package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// shared is what every test uses: the binary, and one broker and one
// PostgreSQL for the tests that do not break theirs.
var shared struct {
	bin   string
	kafka *testenv.Kafka
	pg    *testenv.Postgres
}

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "ingest-api process tests", testmain.Both, func(ctx context.Context, e *testmain.Shared) error {
		shared.kafka, shared.pg = e.Kafka, e.Postgres
		var err error
		shared.bin, err = e.Build(ctx, "ingest-api")
		return err
	}))
}

// TestRunAsAUserWould starts the real binary with only KAFKA_BROKERS,
// DATABASE_URL, SOURCE_KEYS_FILE, HTTP_ADDR, METRICS_ADDR and
// AUTH_TOKENS_FILE set (plus a short SHUTDOWN_DELAY), writes an event
// through it with a token made as auditctl makes them, and stops it with
// SIGTERM: readiness turns 503 while it keeps serving, then it exits 0.
func TestRunAsAUserWould(t *testing.T) {
	token, entry, err := auth.NewToken("process-test", []auth.Scope{auth.ScopeWrite}, nil)
	require.NoError(t, err)
	tokensFile := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, auth.TokensFile{Tokens: []auth.TokenEntry{entry}}.WriteFile(tokensFile))
	api := startAPI(t,
		"DATABASE_URL="+shared.pg.URL(),
		"SOURCE_KEYS_FILE="+testenv.NewSourceKeys(t),
		"AUTH_TOKENS_FILE="+tokensFile,
		"SHUTDOWN_DELAY=1s",
	)
	base := api.base

	event := fmt.Sprintf(`{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":%q,
		"event_category":"gateway","event_action":"received","event_outcome":"success",
		"correlation_id":"rr-2025-001","event_data":{"signal":"cpu-high"}}`, time.Now().UTC().Format(time.RFC3339))
	post := func(token string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v1/audit/events", strings.NewReader(event))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, post(""), "secure by default")
	require.Equal(t, http.StatusCreated, post(token))

	code, err := get(api.metrics + "/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "metrics on METRICS_ADDR")
	code, err = get(base + "/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, code, "never on the API port")

	require.NoError(t, api.Signal(syscall.SIGTERM))
	testenv.Await(t, 5*time.Second, "readiness 503 while still serving", func() (bool, string) {
		code, err := get(base + "/health/ready")
		return code == http.StatusServiceUnavailable, fmt.Sprint(code, err)
	})
	require.Zero(t, api.WaitExit(t, 30*time.Second), "exit status after SIGTERM")
	require.Contains(t, api.Stderr.String(), "ingest-api stopped")
}

// apiProcess is a running ingest-api binary; its log is on Stderr.
type apiProcess struct {
	*testenv.Process
	base    string // http://host:port of the API
	metrics string // and of METRICS_ADDR
}

// startAPI starts the binary with the shared broker and free HTTP_ADDR and
// METRICS_ADDR, env added (later entries win), and waits until it is
// ready. It is killed when the test ends; its output is logged if the test
// failed.
func startAPI(t *testing.T, env ...string) *apiProcess {
	t.Helper()
	addr, metricsAddr := testenv.NewAddr(t), testenv.NewAddr(t)
	p := &apiProcess{base: "http://" + addr, metrics: "http://" + metricsAddr}
	p.Process = testenv.StartProcess(t, shared.bin, nil, append([]string{
		"KAFKA_BROKERS=" + strings.Join(shared.kafka.Brokers(), ","),
		"HTTP_ADDR=" + addr,
		"METRICS_ADDR=" + metricsAddr,
	}, env...)...)
	p.AwaitReady(t, 30*time.Second, p.base+"/health/ready")
	return p
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

// TestStartupFailuresExit starts the API against databases it can never
// migrate: it exits 1 within 30 s, with the reason on stderr, rather than
// serve unready for ever.
func TestStartupFailuresExit(t *testing.T) {
	for _, tt := range testenv.UnusableDatabases(t, shared.pg) {
		t.Run(tt.Name, func(t *testing.T) {
			code, stderr := testenv.RunUntilExit(t, 30*time.Second, shared.bin,
				"KAFKA_BROKERS="+strings.Join(shared.kafka.Brokers(), ","),
				"DATABASE_URL="+tt.URL,
				"SOURCE_SIGNING_DISABLED=true",
				"HTTP_ADDR="+testenv.NewAddr(t),
				"METRICS_ADDR="+testenv.NewAddr(t),
				"AUTH_DISABLED=true")
			require.Equal(t, 1, code, "exit status; stderr:\n%s", stderr)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			require.True(t, strings.HasPrefix(last, "ingest-api: "), "the reason in plain words last: %s", stderr)
			require.Contains(t, last, tt.Reason)
		})
	}
}

// TestRefusesToStartWithoutCredentials: with no credential source and no
// AUTH_DISABLED the API does not start (SPEC 8.2, secure by default); with
// AUTH_DISABLED=true it warns and says so on /health.
func TestRefusesToStartWithoutCredentials(t *testing.T) {
	code, stderr := testenv.RunUntilExit(t, 30*time.Second, shared.bin,
		"KAFKA_BROKERS="+strings.Join(shared.kafka.Brokers(), ","),
		"DATABASE_URL="+shared.pg.URL(),
		"SOURCE_SIGNING_DISABLED=true",
		"HTTP_ADDR="+testenv.NewAddr(t),
		"METRICS_ADDR="+testenv.NewAddr(t))
	require.Equal(t, 2, code, "a usage error; stderr:\n%s", stderr)
	require.Contains(t, stderr, "no credential source")

	api := startAPI(t,
		"DATABASE_URL="+shared.pg.URL(),
		"SOURCE_SIGNING_DISABLED=true",
		"AUTH_DISABLED=true",
		"SHUTDOWN_DELAY=0s",
	)
	var body string
	testenv.Await(t, 30*time.Second, "/health answers", func() (bool, string) {
		res, err := http.Get(api.base + "/health")
		if err != nil {
			return false, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		body = string(b)
		return res.StatusCode == http.StatusOK, body
	})
	require.Contains(t, body, `"auth":"disabled"`)
	require.Contains(t, api.Stderr.String(), "access control is disabled")
}
