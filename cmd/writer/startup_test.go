package main

import (
	"fmt"
	"net/http"
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
			code, stderr := testenv.RunUntilExit(t, startupDeadline, shared.bin,
				"KAFKA_BROKERS="+strings.Join(shared.kafka.Brokers(), ","),
				"DATABASE_URL="+tt.URL,
				"SOURCE_SIGNING_DISABLED=true",
				"METRICS_ADDR="+testenv.NewAddr(t))
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
		require.True(t, w.running(), "writer exited: %s", w.exitStatus())
		n := strings.Count(w.out.String(), "schema migration failed, retrying")
		return n >= 2, fmt.Sprintf("%d retries logged", n)
	})
	code, body, err := w.get("/health/ready")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, code, body)

	require.NoError(t, pg.Start(t.Context()))
	w.awaitReady(startupDeadline)
	w.signal(syscall.SIGTERM)
	require.NoError(t, w.waitExit(gracePeriod))
}
