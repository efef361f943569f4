// Package backoff paces retries: capped exponential waits that end as soon
// as the context does. Every retry loop of the binaries (connecting to
// Kafka, migrating, waiting out a database outage, re-publishing dead
// letters) uses it, so they all back off alike and all stop on shutdown.
package backoff

import (
	"context"
	"time"
)

// Backoff is the wait before the next attempt. The zero value is not
// usable; build one with New. Not safe for concurrent use.
type Backoff struct {
	base, max, next time.Duration
}

// New returns a Backoff whose first wait is base, doubling up to max.
func New(base, max time.Duration) *Backoff {
	return &Backoff{base: base, max: max, next: base}
}

// Next is the wait the next call to Wait will make.
func (b *Backoff) Next() time.Duration { return b.next }

// Wait sleeps for the current wait, then doubles it up to the cap. It
// reports false, at once, when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	b.next = min(b.next*2, b.max)
	return true
}

// Reset starts again from the first wait, after a success.
func (b *Backoff) Reset() { b.next = b.base }
