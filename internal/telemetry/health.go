package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Check reports whether one dependency is usable; nil means healthy.
type Check func(ctx context.Context) error

// Health tracks readiness and runs the dependency checks behind /health.
// Readiness is false until the binary has finished starting and again from
// the moment it begins shutting down, so load balancers stop sending traffic
// before the listener closes.
//
// What a failing dependency says (user, database, host and port, broker
// addresses) is kept out of the open /health: it goes to the log when the
// dependency's state changes, and to DetailsHandler, which is for
// authenticated callers only.
type Health struct {
	ready   atomic.Bool
	reason  atomic.Pointer[string]
	checks  map[string]Check
	names   []string // of checks, sorted
	timeout time.Duration
	log     *zap.Logger

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

	mu   sync.Mutex
	down map[string]bool // each component's state at the last probe
}

// HealthOption configures NewHealth.
type HealthOption func(*Health)

// WithLogger makes Health log each dependency's changes of state with the
// dependency's own error: once when it starts failing, once when it
// recovers, never per probe.
func WithLogger(log *zap.Logger) HealthOption {
	return func(h *Health) { h.log = log }
}

// NewHealth returns a Health that is not ready yet.
func NewHealth(checks map[string]Check, opts ...HealthOption) *Health {
	h := &Health{checks: checks, timeout: 3 * time.Second, log: zap.NewNop(), down: map[string]bool{}}
	for name := range checks {
		h.names = append(h.names, name)
	}
	sort.Strings(h.names)
	for _, o := range opts {
		o(h)
	}
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
// component's state read at each request: counts and states, never what a
// dependency said (the open /health names no connection details). Call it
// before serving.
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

// CheckResult is one dependency's answer to a probe; Err nil means healthy.
type CheckResult struct {
	Name string
	Err  error
}

// Report runs every dependency check concurrently, each bounded by a
// timeout so a hanging dependency cannot hang the probe, and returns every
// answer in name order: a check that did not answer in time is reported as
// such. Changes of state since the previous probe are logged.
func (h *Health) Report(ctx context.Context) []CheckResult {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	answers := make([]chan error, len(h.names))
	for i, name := range h.names {
		answers[i] = make(chan error, 1)
		go func() { answers[i] <- h.checks[name](ctx) }()
	}
	results := make([]CheckResult, len(h.names))
	for i, name := range h.names {
		results[i].Name = name
		select {
		case results[i].Err = <-answers[i]:
		case <-ctx.Done():
			results[i].Err = fmt.Errorf("no answer within %s", h.timeout)
		}
	}
	h.logChanges(results)
	return results
}

// logChanges logs the components whose state differs from the last probe.
// A component is taken as healthy before its first probe, so a healthy
// start logs nothing.
func (h *Health) logChanges(results []CheckResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range results {
		down := r.Err != nil
		if down == h.down[r.Name] {
			continue
		}
		h.down[r.Name] = down
		if down {
			h.log.Warn("dependency check failing", zap.String("component", r.Name), zap.Error(r.Err))
		} else {
			h.log.Info("dependency check passing again", zap.String("component", r.Name))
		}
	}
}

// Check runs Report and joins every failure as "name: error".
func (h *Health) Check(ctx context.Context) error {
	var errs []error
	for _, r := range h.Report(ctx) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, r.Err))
		}
	}
	return errors.Join(errs...)
}
