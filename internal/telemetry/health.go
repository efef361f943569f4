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
	// notes are facts about the process's configuration that /health
	// reports beside the status (such as "auth": "disabled"); set while
	// wiring, before serving.
	notes map[string]string
	// details are components' states /health reports beside the status,
	// read at each request (ingest-api's spool); set while wiring.
	details map[string]func() any
	// gates are conditions readiness also needs once SetReady was called;
	// set while wiring.
	gates map[string]func() error
}

// NewHealth returns a Health that is not ready yet.
func NewHealth(checks map[string]Check) *Health {
	h := &Health{checks: checks, timeout: 3 * time.Second}
	h.SetNotReady("starting")
	return h
}

// Note makes /health report key: value beside its status, for settings an
// operator must see at a glance (SPEC 8.2: "auth": "disabled"). Call it
// before the health endpoints are served.
func (h *Health) Note(key, value string) {
	if h.notes == nil {
		h.notes = map[string]string{}
	}
	h.notes[key] = value
}

// Detail makes /health report key: state() beside its status, a
// component's state read at each request. Call it before serving.
func (h *Health) Detail(key string, state func() any) {
	if h.details == nil {
		h.details = map[string]func() any{}
	}
	h.details[key] = state
}

// Gate makes readiness also need check to pass, once the process is ready
// (SPEC 11: ingest-api stays ready while its spool has room). Call it
// before serving.
func (h *Health) Gate(name string, check func() error) {
	if h.gates == nil {
		h.gates = map[string]func() error{}
	}
	h.gates[name] = check
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
		for name, check := range h.gates {
			if err := check(); err != nil {
				return false, name + ": " + err.Error()
			}
		}
		return true, ""
	}
	if r := h.reason.Load(); r != nil {
		return false, *r
	}
	return false, "not ready"
}

// Check runs every dependency check concurrently, each bounded by a
// timeout so a hanging dependency cannot hang the probe, and reports every
// failure by name: a check that did not answer in time is reported as
// such, next to the others' own errors.
func (h *Health) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	names := make([]string, 0, len(h.checks))
	for name := range h.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	results := make([]chan error, len(names))
	for i, name := range names {
		results[i] = make(chan error, 1)
		go func() { results[i] <- h.checks[name](ctx) }()
	}
	var errs []error
	for i, name := range names {
		select {
		case err := <-results[i]:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s: no answer within %s", name, h.timeout))
		}
	}
	return errors.Join(errs...)
}
