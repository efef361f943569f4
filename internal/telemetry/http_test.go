package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestServeHTTPShutdown: after the context ends the server answers
// readiness 503 for the delay, then closes its listener and returns.
func TestServeHTTPShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	h := NewHealth(map[string]Check{"ok": func(context.Context) error { return nil }})
	h.SetReady()
	srv := &http.Server{Addr: addr, Handler: OpsMux(h, prometheus.NewRegistry()), ReadHeaderTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHTTP(ctx, srv, h, zap.NewNop(), 2*time.Second, time.Second) }()

	ready := func() (int, error) {
		res, err := http.Get("http://" + addr + "/health/ready")
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	require.Eventually(t, func() bool { code, err := ready(); return err == nil && code == http.StatusOK }, 5*time.Second, 10*time.Millisecond)

	cancel()
	require.Eventually(t, func() bool { code, err := ready(); return err == nil && code == http.StatusServiceUnavailable },
		time.Second, 10*time.Millisecond, "readiness 503 while still serving")
	require.NoError(t, <-done)
	_, err = ready()
	require.True(t, errors.Is(err, syscall.ECONNREFUSED), "listener closed after the delay: %v", err)
}

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
