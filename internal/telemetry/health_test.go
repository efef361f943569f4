package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestHealthCheckJoinsFailuresAndBoundsTime(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := NewHealth(map[string]Check{
		"good":  func(context.Context) error { return nil },
		"bad":   func(context.Context) error { return errors.New("down") },
		"stuck": func(context.Context) error { <-release; return nil }, // ignores its context
	})
	h.timeout = 100 * time.Millisecond
	err := h.Check(context.Background())
	require.EqualError(t, err, "bad: down\nstuck: no answer within 100ms")
	require.NoError(t, NewHealth(map[string]Check{"good": func(context.Context) error { return nil }}).Check(context.Background()))

	ok, reason := h.Ready()
	require.False(t, ok)
	require.Equal(t, "starting", reason)
	h.SetReady()
	ok, _ = h.Ready()
	require.True(t, ok)
}

// secretErr is what a failing dependency says: user, database, host and
// port, which an unauthenticated /health must not repeat.
var secretErr = errors.New(`failed to connect to user=auditstream database=audit: 10.1.2.3:5432 (db.internal): connection refused`)

// TestHealthHandlerNamesComponentsOnly: the open /health answers which
// dependencies are up or down and nothing they said; the detailed report,
// for authenticated callers, has their words.
func TestHealthHandlerNamesComponentsOnly(t *testing.T) {
	failing := NewHealth(map[string]Check{
		"postgresql": func(context.Context) error { return secretErr },
		"kafka":      func(context.Context) error { return nil },
	})
	tests := []struct {
		name    string
		handler http.Handler
		status  int
		body    string
	}{
		{"open, one down", failing.HealthHandler(), http.StatusServiceUnavailable,
			`{"status":"unhealthy","error":"unavailable: postgresql (the service log has the details)","checks":{"kafka":"ok","postgresql":"down"}}`},
		{"open, all up", NewHealth(map[string]Check{"kafka": func(context.Context) error { return nil }}).HealthHandler(), http.StatusOK,
			`{"status":"healthy","checks":{"kafka":"ok"}}`},
		{"details", failing.DetailsHandler(), http.StatusServiceUnavailable,
			`{"status":"unhealthy","checks":{"kafka":{"status":"ok"},"postgresql":{"status":"down","error":` + strconv.Quote(secretErr.Error()) + `}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			require.Equal(t, tc.status, rec.Code)
			require.JSONEq(t, tc.body, rec.Body.String())
			require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		})
	}
}

// TestHealthLogsStateChanges: the detail of a failure goes to the log once
// when a dependency goes down and once when it is back, not on every probe.
func TestHealthLogsStateChanges(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	var down atomic.Bool
	h := NewHealth(map[string]Check{
		"postgresql": func(context.Context) error {
			if down.Load() {
				return secretErr
			}
			return nil
		},
		"kafka": func(context.Context) error { return nil },
	}, WithLogger(zap.New(core)))
	probe := func(n int) {
		for range n {
			_ = h.Check(context.Background())
		}
	}
	probe(3)
	require.Zero(t, logs.Len(), "healthy from the start: nothing to say")
	down.Store(true)
	probe(5)
	down.Store(false)
	probe(2)
	down.Store(true)
	probe(1)

	var got []string
	for _, e := range logs.AllUntimed() {
		got = append(got, e.Level.String()+" "+e.Message+" "+fmt.Sprint(e.ContextMap()))
	}
	require.Equal(t, []string{
		"warn dependency check failing map[component:postgresql error:" + secretErr.Error() + "]",
		"info dependency check passing again map[component:postgresql]",
		"warn dependency check failing map[component:postgresql error:" + secretErr.Error() + "]",
	}, got)
}

func TestGatesAndDetails(t *testing.T) {
	h := NewHealth(nil)
	var full atomic.Bool
	h.Gate("spool", func() error {
		if full.Load() {
			return errors.New("full")
		}
		return nil
	})
	h.Detail("spool", func() any { return map[string]int{"records": 3} })
	full.Store(true)
	ok, reason := h.Ready()
	require.False(t, ok)
	require.Equal(t, "starting", reason, "a gate does not make a starting process ready")
	h.SetReady()
	ok, reason = h.Ready()
	require.False(t, ok)
	require.Equal(t, "spool: full", reason)
	full.Store(false)
	ok, _ = h.Ready()
	require.True(t, ok)

	for _, handler := range []http.Handler{h.HealthHandler(), h.DetailsHandler()} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
		require.JSONEq(t, `{"status":"healthy","checks":{},"spool":{"records":3}}`, rec.Body.String())
	}
}

// TestPprofOnlyWhenServed: the profiler is on the ops mux only once
// ServePprof added it (PPROF_ENABLED), never by default.
func TestPprofOnlyWhenServed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		serve bool
		want  int
	}{{"off by default", false, http.StatusNotFound}, {"served", true, http.StatusOK}} {
		t.Run(tt.name, func(t *testing.T) {
			mux := OpsMux(NewHealth(nil), prometheus.NewRegistry())
			if tt.serve {
				ServePprof(mux)
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1"} {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				require.Equal(t, tt.want, rec.Code, path)
			}
		})
	}
}
