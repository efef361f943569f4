// Package backoff paces retries: capped exponential waits with full jitter
// that end as soon as the context does. Every retry loop of the binaries
// (connecting to Kafka, migrating, waiting out a database outage,
// re-publishing dead letters) uses one of the policies in policies.go, so
// they all back off alike and all stop on shutdown.
//
// Full jitter (each wait drawn uniformly from zero up to the exponential
// ceiling) is what keeps replicas apart: without it, every writer that lost
// the database at the same moment would knock on it again at the same
// moments, in lockstep, while it recovers.
//
// It is a few lines of our own rather than a retry library: the writer's
// loops need to log the coming wait, pause fetching and give up on a final
// flush between attempts, which a Retry(operation) shape does not fit, and
// the libraries' default of giving up after some minutes is wrong for a
// writer that must outlast any outage.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy is the shape of one kind of retry: the ceiling of the first wait
// and the cap the ceiling doubles up to.
type Policy struct {
	First, Max time.Duration
}

// New starts a Backoff on the policy.
func (p Policy) New() *Backoff {
	b := &Backoff{policy: p, draw: rand.Int64N}
	b.Reset()
	return b
}

// Backoff is the wait before the next attempt. Build one with Policy.New.
// Not safe for concurrent use.
type Backoff struct {
	policy  Policy
	ceiling time.Duration
	next    time.Duration
	// draw returns a number in [0, n); math/rand/v2's, seeded per process,
	// so replicas draw differently.
	draw func(n int64) int64
}

// Next is the wait the next call to Wait will make.
func (b *Backoff) Next() time.Duration { return b.next }

// Wait sleeps for the current wait, then doubles the ceiling up to the cap
// and draws the next wait. It reports false, at once, when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	b.ceiling = min(b.ceiling*2, b.policy.Max)
	b.roll()
	return true
}

// Reset starts again from the first ceiling, after a success.
func (b *Backoff) Reset() {
	b.ceiling = min(b.policy.First, b.policy.Max)
	b.roll()
}

// roll draws the next wait from (0, ceiling]: never zero, so a loop
// against a server that refuses at once still yields the CPU.
func (b *Backoff) roll() {
	b.next = time.Duration(b.draw(int64(b.ceiling))) + 1
}

// Permanent marks err as one that no retry can heal: Retry returns it at
// once. errors.Is and errors.As see through the mark.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Retry calls op until it succeeds, returns an error marked Permanent (which
// Retry returns as it is), or ctx ends (then it returns ctx's error). Before
// each wait it calls notify, if not nil, with the failed attempt's number,
// its error and the wait that follows, for the caller's log line.
func Retry(ctx context.Context, p Policy, op func(ctx context.Context) error,
	notify func(attempt int, err error, wait time.Duration)) error {
	b := p.New()
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		if notify != nil {
			notify(attempt, err, b.Next())
		}
		if !b.Wait(ctx) {
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
	}
}
