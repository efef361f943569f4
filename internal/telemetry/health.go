package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"
)

// Check reports whether one dependency is usable; nil means healthy.
type Check func(ctx context.Context) error

// Health tracks readiness and runs the dependency checks behind /health.
// Readiness is false until the binary has finished starting and again from
// the moment it begins shutting down, so load balancers stop sending traffic
// before the listener closes.
type Health struct {
	ready   atomic.Bool
	reason  atomic.Pointer[string]
	checks  map[string]Check
	timeout time.Duration
}

// NewHealth returns a Health that is not ready yet.
func NewHealth(checks map[string]Check) *Health {
	h := &Health{checks: checks, timeout: 3 * time.Second}
	h.SetNotReady("starting")
	return h
}

// SetReady marks the process as able to take traffic.
func (h *Health) SetReady() {
	h.ready.Store(true)
	h.reason.Store(nil)
}

// SetNotReady marks the process as unable to take traffic, with why.
func (h *Health) SetNotReady(reason string) {
	h.reason.Store(&reason)
	h.ready.Store(false)
}

// Ready reports readiness and, when not ready, the reason.
func (h *Health) Ready() (bool, string) {
	if h.ready.Load() {
		return true, ""
	}
	if r := h.reason.Load(); r != nil {
		return false, *r
	}
	return false, "not ready"
}

// Check runs every dependency check, each bounded by a timeout so a hanging
// dependency cannot hang the probe, and joins the failures.
func (h *Health) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	names := make([]string, 0, len(h.checks))
	for name := range h.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	done := make(chan struct{}, len(names))
	for i, name := range names {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := h.checks[name](ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	for range names {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("health checks: %w", ctx.Err())
		}
	}
	return errors.Join(errs...)
}
