package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/testenv"
)

// startupDeadline is how soon a binary that cannot start must have exited:
// a crash loop with its reason, not a pod that is never ready.
const startupDeadline = 30 * time.Second

// TestStartupFailuresExit starts the writer against databases it can never
// use: it exits 1 within startupDeadline, with the reason on stderr.
func TestStartupFailuresExit(t *testing.T) {
	for _, tt := range testenv.UnusableDatabases(t, shared.pg) {
		t.Run(tt.Name, func(t *testing.T) {
			start := time.Now()
			code, stderr := testenv.RunUntilExit(t, startupDeadline, shared.bin, append(shared.keys.Env(),
				"KAFKA_BROKERS="+strings.Join(shared.kafka.Brokers(), ","),
				"DATABASE_URL="+tt.URL,
				"SOURCE_SIGNING_DISABLED=true",
				"METRICS_ADDR="+testenv.NewAddr(t))...)
			t.Logf("exited %d after %s", code, time.Since(start).Round(time.Millisecond))
			require.Equal(t, 1, code, "exit status; stderr:\n%s", stderr)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			require.True(t, strings.HasPrefix(lines[len(lines)-1], "writer: "), "the reason in plain words last: %s", stderr)
			require.Contains(t, lines[len(lines)-1], tt.Reason)
		})
	}
}

// TestStartupWaitsForTheDatabase: a database that is down when the writer
// starts is a transient failure: the writer retries, unready, and turns
// ready once the database is up.
func TestStartupWaitsForTheDatabase(t *testing.T) {
	pg := testenv.NewPostgres(t)
	require.NoError(t, pg.Stop(t.Context()))
	w := startWriter(t, newPipeline(t), "late-database", "DATABASE_URL="+pg.URL())

	testenv.Await(t, startupDeadline, "two retries of the migration", func() (bool, string) {
		require.True(t, w.Running(), "writer exited: %s", w.State())
		n := strings.Count(w.Stderr.String(), "schema migration failed, retrying")
		return n >= 2, fmt.Sprintf("%d retries logged", n)
	})
	code, body, err := w.get("/health/ready")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, code, body)

	require.NoError(t, pg.Start(t.Context()))
	w.awaitReady(startupDeadline)
	w.signal(syscall.SIGTERM)
	require.Zero(t, w.WaitExit(t, gracePeriod), "exit status after SIGTERM")
}

// TestIntegrityKeysRequired: the writer refuses to start without the
// chain's keys (a usage error, exit 2, naming what is missing), exits 1 on
// keys it cannot use (naming the file, never the secret), and with
// INTEGRITY_DISABLED=true starts, says so, and stores events without a
// chain.
func TestIntegrityKeysRequired(t *testing.T) {
	base := []string{"KAFKA_BROKERS=" + strings.Join(shared.kafka.Brokers(), ","), "DATABASE_URL=" + shared.pg.URL(),
		"SOURCE_SIGNING_DISABLED=true", "METRICS_ADDR=" + testenv.NewAddr(t)}
	code, stderr := testenv.RunUntilExit(t, startupDeadline, shared.bin, base...)
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "INTEGRITY_KEYS_FILE is required")
	require.Contains(t, stderr, "CHECKPOINT_SIGNING_KEY_FILE is required")
	require.Contains(t, stderr, "INTEGRITY_DISABLED=true")

	dir := t.TempDir()
	short := filepath.Join(dir, "short.yaml")
	require.NoError(t, os.WriteFile(short, []byte("keys:\n  - id: k1\n    secret: c2hvcnQtc2VjcmV0\n"), 0o600))
	notPEM := filepath.Join(dir, "signing.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("c2VjcmV0LXNpZ25pbmcta2V5"), 0o600))
	for _, tc := range []struct {
		name, keys, signing, want, secret string
	}{
		{"short HMAC key", short, shared.keys.SigningKeyFile, "short.yaml", "c2hvcnQtc2VjcmV0"},
		{"signing key not PEM", shared.keys.KeysFile, notPEM, "signing.pem", "c2VjcmV0LXNpZ25pbmcta2V5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := testenv.RunUntilExit(t, startupDeadline, shared.bin,
				append(base, "INTEGRITY_KEYS_FILE="+tc.keys, "CHECKPOINT_SIGNING_KEY_FILE="+tc.signing)...)
			require.Equal(t, 1, code, stderr)
			require.Contains(t, stderr, tc.want)
			require.NotContains(t, stderr, tc.secret)
		})
	}

	p := newPipeline(t)
	w := startWriter(t, p, "integrity-disabled", "INTEGRITY_KEYS_FILE=", "CHECKPOINT_SIGNING_KEY_FILE=", "INTEGRITY_DISABLED=true")
	w.awaitReady(startupDeadline)
	require.Contains(t, w.Stderr.String(), "integrity disabled")
	produce(t, p, chainRecord(p.tag, p.tag+"-unchained", time.Now(), "stored"))
	testenv.Await(t, catchUpTimeout, "the event stored", func() (bool, string) {
		n := storedCount(t, p)
		return n == 1, fmt.Sprintf("%d stored", n)
	})
	var unchained bool
	require.NoError(t, shared.db.QueryRow(t.Context(), `SELECT chain_seq IS NULL AND event_hash IS NULL AND previous_event_hash IS NULL
		AND hash_key_id IS NULL AND hash_version IS NULL FROM audit_events WHERE event_type = $1`, p.tag).Scan(&unchained))
	require.True(t, unchained, "stored without a chain")
	var head int
	require.NoError(t, shared.db.QueryRow(t.Context(), `SELECT count(*) FROM chain_heads WHERE correlation_id = $1`, p.tag+"-unchained").Scan(&head))
	require.Zero(t, head)
}
