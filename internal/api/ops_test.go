package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/api/openapi"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
	"github.com/auditstream/auditstream/internal/testenv"
)

func TestHealthEndpoints(t *testing.T) {
	f := newFixture(t)
	res := f.do(http.MethodGet, "/health", "", nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, "healthy", res.json(t)["status"])
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/health/live", "", nil).status)
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/health/ready", "", nil).status)

	f.health.SetNotReady("shutting down")
	res = f.do(http.MethodGet, "/health/ready", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	require.Equal(t, "shutting down", res.json(t)["error"])
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/health/live", "", nil).status, "alive while draining")
}

func TestHealthReportsAStoppedDatabase(t *testing.T) {
	pg := testenv.NewPostgres(t)
	db := openStore(t, pg.URL())
	require.NoError(t, pg.Stop(t.Context()))
	f := newFixture(t, withHealthChecks(map[string]telemetry.Check{"postgresql": db.Ping, "kafka": shared.producer.Check}))
	res := f.do(http.MethodGet, "/health", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
	p := res.json(t)
	require.Equal(t, "unhealthy", p["status"])
	require.Contains(t, p["error"], "postgresql")
}

func TestRequestIDIsEchoedOrGenerated(t *testing.T) {
	f := newFixture(t)
	res := f.do(http.MethodGet, "/health/live", "", nil, "X-Request-ID", "req-42")
	require.Equal(t, "req-42", res.header.Get("X-Request-ID"))
	res = f.do(http.MethodGet, "/health/live", "", nil, "X-Request-ID", "bad id\twith controls")
	require.NotEqual(t, "bad id\twith controls", res.header.Get("X-Request-ID"))
	require.NotEmpty(t, res.header.Get("X-Request-ID"))
}

func TestUnknownRoutesAndMethodsAreProblems(t *testing.T) {
	f := newFixture(t)
	res := f.do(http.MethodGet, "/nope", "", nil)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "https://auditstream.dev/problems/not-found", res.json(t)["type"])
	res = f.do(http.MethodDelete, "/api/v1/audit/notifications", "", nil)
	require.Equal(t, http.StatusMethodNotAllowed, res.status)
	require.Equal(t, "https://auditstream.dev/problems/method-not-allowed", res.json(t)["type"])
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	f := newFixture(t)
	res := f.do(http.MethodGet, "/openapi.yaml", "", nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, openapi.ContentType, res.header.Get("Content-Type"))
	require.Equal(t, openapi.YAML(), res.body)
}

func TestMetricsExposeTheSeedNames(t *testing.T) {
	f := newFixture(t)
	require.Equal(t, http.StatusCreated, f.postJSON("/api/v1/audit/events", validEvent()).status)
	bad := validEvent()
	delete(bad, "version")
	require.Equal(t, http.StatusBadRequest, f.postJSON("/api/v1/audit/events", bad).status)

	require.Equal(t, http.StatusNotFound, f.do(http.MethodGet, "/metrics", "", nil).status, "not on the API port")
	res, err := http.Get(f.metricsURL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	text := string(b)
	for _, want := range []string{
		`datastorage_audit_traces_total{service="event",status="success"} 1`,
		`datastorage_audit_traces_total{service="event",status="failure"} 1`,
		`datastorage_validation_failures_total{field="version",reason="required"} 1`,
		`datastorage_write_duration_seconds_count{table="audit_events"} 1`,
		`datastorage_audit_lag_seconds_count{service="event"} 1`,
		`auditstream_http_requests_total{code="201",method="POST",route="/api/v1/audit/events"} 1`,
	} {
		require.Contains(t, text, want)
	}
}

func withHealthChecks(checks map[string]telemetry.Check) fixtureOption {
	return func(_ *api.Config, d *api.Deps) {
		d.Health = telemetry.NewHealth(checks)
		d.Health.SetReady()
	}
}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	db, err := store.Open(t.Context(), store.Config{URL: url, MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// TestHealthNamesNoConnectionDetails: with PostgreSQL and Kafka down, the
// open /health names the components and their states, not the database
// user, database, host:port or broker addresses their errors carry; those
// go to the log, once per change of state.
func TestHealthNamesNoConnectionDetails(t *testing.T) {
	pg := testenv.NewPostgres(t)
	db := openStore(t, pg.URL())
	require.NoError(t, pg.Stop(t.Context()))
	k := testenv.NewKafka(t, nil)
	producer, err := newProducer(k.Brokers(), time.Second)
	require.NoError(t, err)
	require.NoError(t, producer.Connect(t.Context()))
	t.Cleanup(func() { _ = producer.Close() })
	require.NoError(t, k.Close())

	core, logs := observer.New(zap.InfoLevel)
	f := newFixture(t, func(_ *api.Config, d *api.Deps) {
		d.Health = telemetry.NewHealth(map[string]telemetry.Check{"postgresql": db.Ping, "kafka": producer.Check},
			telemetry.WithLogger(zap.New(core)))
		d.Health.SetReady()
	})
	conn, err := pgconn.ParseConfig(pg.URL())
	require.NoError(t, err)
	// pgx names the user and database as user=... database=...; their
	// values (postgres, for the embedded server) are part of a component's
	// name, so the exact body below is what shows they are not there.
	secrets := append([]string{"user=", "database=", fmt.Sprintf("%s:%d", conn.Host, conn.Port), fmt.Sprint(conn.Port)}, k.Brokers()...)

	for range 3 {
		res := f.do(http.MethodGet, "/health", "", nil)
		require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
		for _, s := range secrets {
			require.NotContains(t, string(res.body), s)
		}
		require.Equal(t, map[string]any{
			"status": "unhealthy",
			"error":  "unavailable: kafka, postgresql (the service log has the details)",
			"checks": map[string]any{"kafka": "down", "postgresql": "down"},
		}, res.json(t))
	}
	failing := logs.FilterMessage("dependency check failing").AllUntimed()
	require.Len(t, failing, 2, "one line per component that went down, not one per probe")
	var logged strings.Builder
	for _, e := range failing {
		logged.WriteString(fmt.Sprint(e.ContextMap()))
	}
	require.Contains(t, logged.String(), fmt.Sprint(conn.Port), "the log has the detail")
}

// TestHealthDetailsNeedAdmin: the detailed report, with each component's
// own error, is served to audit:admin only.
func TestHealthDetailsNeedAdmin(t *testing.T) {
	pg := testenv.NewPostgres(t)
	db := openStore(t, pg.URL())
	require.NoError(t, pg.Stop(t.Context()))
	f := newFixture(t, withHealthChecks(map[string]telemetry.Check{"postgresql": db.Ping, "kafka": shared.producer.Check}))
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "reader", SHA256: auth.TokenSHA256("ast_reader"), Scopes: []auth.Scope{auth.ScopeRead}})
	conn, err := pgconn.ParseConfig(pg.URL())
	require.NoError(t, err)

	res := f.do(http.MethodGet, "/api/v1/audit/health", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
	checks := res.json(t)["checks"].(map[string]any)
	require.Equal(t, map[string]any{"status": "ok"}, checks["kafka"])
	down := checks["postgresql"].(map[string]any)
	require.Equal(t, "down", down["status"])
	require.Contains(t, down["error"], fmt.Sprint(conn.Port), "the detail names where the database is")

	testenv.Await(t, 5*time.Second, "the reader's token is loaded", func() (bool, string) {
		res = f.do(http.MethodGet, "/api/v1/audit/health", "", nil, "Authorization", "Bearer ast_reader")
		return res.status == http.StatusForbidden, fmt.Sprint(res.status)
	})
	require.Contains(t, res.json(t)["detail"], string(auth.ScopeAdmin))
	require.NotContains(t, string(res.body), fmt.Sprint(conn.Port))

	res = f.do(http.MethodGet, "/api/v1/audit/health", "", nil, "Authorization", "")
	require.Equal(t, http.StatusUnauthorized, res.status)
}
