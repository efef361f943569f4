// Package e2e runs the real binaries together, ingest-api, writer,
// dlq-replayer and auditctl, as operators run them, against the services of
// internal/testenv: what no single binary's tests can show, such as the
// whole pipeline over secured connections, or an identity that the API
// signs and the writer checks.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// bin is the directory holding the binaries, built once.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "end-to-end tests", 0, func(ctx context.Context, s *testmain.Shared) error {
		dir, err := os.MkdirTemp("", "e2e-bin-")
		if err != nil {
			return err
		}
		s.Cleanup(func() { _ = os.RemoveAll(dir) })
		bin = dir
		return testenv.BuildCommands(ctx, dir, "ingest-api", "writer", "dlq-replayer", "auditctl")
	}))
}

// startupTimeout bounds a binary's way to ready: migrations, topic
// creation and joining the group take a few seconds on a loaded machine.
const startupTimeout = 60 * time.Second

// service is a long-running binary of the pipeline and the address of its
// health endpoints.
type service struct {
	*testenv.Process
	name, addr string
}

// start runs binary name with env, on a free address: HTTP_ADDR for the
// API, METRICS_ADDR for the others; a writer gets integrity keys of its
// own unless env names some. The API gets a METRICS_ADDR of its own
// too: from issue 17 on it serves /metrics on a listener of its own, by
// default :9090, which another test may hold.
func start(t *testing.T, name string, env ...string) *service {
	t.Helper()
	addr := testenv.NewAddr(t)
	listen := []string{"METRICS_ADDR=" + addr}
	if name == "ingest-api" {
		listen = []string{"HTTP_ADDR=" + addr, "METRICS_ADDR=" + testenv.NewAddr(t)}
	}
	if name == "writer" {
		// Integrity keys first: a test's own env, later, wins.
		env = append(testenv.NewIntegrityKeys(t).Env(), env...)
	}
	env = append(append(env, listen...), "LOG_FORMAT=json", "SHUTDOWN_DELAY=0s")
	return &service{Process: testenv.StartProcess(t, filepath.Join(bin, name), nil, env...), name: name, addr: addr}
}

// awaitReady waits until /health/ready answers 200.
func (s *service) awaitReady(t *testing.T) {
	t.Helper()
	testenv.Await(t, startupTimeout, s.name+" ready", func() (bool, string) {
		require.True(t, s.Running(), "%s exited during start-up:\n%s", s.name, s.Stderr.Tail(4<<10))
		code, body, err := httpDo(http.MethodGet, "http://"+s.addr+"/health/ready", "")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
}

// run runs a command-line binary to its end and returns its exit code and
// output.
func run(t *testing.T, name string, args []string, env ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := testenv.StartProcess(t, filepath.Join(bin, name), args, env...)
	code = p.WaitExit(t, startupTimeout)
	return code, p.Stdout.String(), p.Stderr.String()
}

// httpDo sends one request with a JSON body (none when empty).
func httpDo(method, url, body string) (int, string, error) {
	return httpDoAs("", method, url, body)
}

// httpDoAs is httpDo with token as the bearer credential (none when empty).
func httpDoAs(token, method, url, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// eventJSON is a valid AuditEventRequest with the given ids.
func eventJSON(eventID, correlationID string) string {
	return fmt.Sprintf(`{"event_id":%q,"version":"1.0","event_type":"e2e.check","event_timestamp":%q,
		"event_category":"gateway","event_action":"check","event_outcome":"success",
		"correlation_id":%q,"event_data":{"e2e":true}}`, eventID, time.Now().UTC().Format(time.RFC3339Nano), correlationID)
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
