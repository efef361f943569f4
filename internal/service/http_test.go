package service

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

	"github.com/auditstream/auditstream/internal/telemetry"
)

// TestServeHTTPShutdown: after the context ends the server answers
// readiness 503 for the delay, then closes its listener and returns.
func TestServeHTTPShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	h := telemetry.NewHealth(map[string]telemetry.Check{"ok": func(context.Context) error { return nil }})
	h.SetReady()
	srv := &http.Server{Addr: addr, Handler: telemetry.OpsMux(h, prometheus.NewRegistry()), ReadHeaderTimeout: time.Second}
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

// TestServeHTTPNeverReadyStopsAtOnce: a process that never turned ready had
// no traffic to turn away, so it does not wait out the delay.
func TestServeHTTPNeverReadyStopsAtOnce(t *testing.T) {
	h := telemetry.NewHealth(nil)
	srv := &http.Server{Addr: "127.0.0.1:0", Handler: telemetry.OpsMux(h, prometheus.NewRegistry()), ReadHeaderTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	require.NoError(t, ServeHTTP(ctx, srv, h, zap.NewNop(), time.Minute, time.Second))
	require.Less(t, time.Since(start), 10*time.Second, "returned without the one-minute delay")
}
