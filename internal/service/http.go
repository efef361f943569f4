package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/telemetry"
)

// ServeHTTP listens on srv.Addr and serves until ctx ends; then it marks the
// process not ready, keeps serving for delay (if it was ready) so that load
// balancers see the 503 and stop sending requests before the listener
// closes, and drains in-flight requests for at most drain.
// The listener is bound before ServeHTTP returns control to the caller's
// errgroup, so a bad address fails start-up at once. With srv.TLSConfig set
// it serves HTTPS only (its certificates come from that configuration).
func ServeHTTP(ctx context.Context, srv *http.Server, h *telemetry.Health, log *zap.Logger, delay, drain time.Duration) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", srv.Addr, err)
	}
	log.Info("http server listening", zap.String("addr", ln.Addr().String()))
	serveErr := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- srv.Serve(ln)
	}()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve %s: %w", srv.Addr, err)
	case <-ctx.Done():
	}
	// A process that never turned ready (a start-up failure, or SIGTERM
	// while starting) was sent no traffic: there is nothing to wait out,
	// and a start-up failure should exit promptly.
	wasReady, _ := h.Ready()
	h.SetNotReady("shutting down")
	if delay > 0 && wasReady {
		log.Info("not ready; serving on while load balancers notice", zap.Duration("delay", delay))
		select {
		case err := <-serveErr:
			return fmt.Errorf("serve %s: %w", srv.Addr, err)
		case <-time.After(delay):
		}
	}
	log.Info("http server draining", zap.Duration("timeout", drain))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("drain http server: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", srv.Addr, err)
	}
	log.Info("http server stopped")
	return nil
}
