package api_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/api/openapi"
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
