package telemetry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

	rec := httptest.NewRecorder()
	h.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	require.JSONEq(t, `{"status":"healthy","spool":{"records":3}}`, rec.Body.String())
}
