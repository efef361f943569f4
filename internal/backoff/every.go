package backoff

import (
	"context"
	"time"
)

// Every runs fn at once and then every interval until ctx ends, then
// returns nil: the shape of the binaries' maintenance loops. A failed run
// is followed by the next one after retry instead, and reported to failed
// with that wait (not when the failure is ctx ending); it never stops the
// loop. A periodic task, unlike a retry, has nothing to back off from: the
// next run is due anyway, so the waits are fixed.
func Every(ctx context.Context, interval, retry time.Duration, fn func(context.Context) error, failed func(err error, wait time.Duration)) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		wait := interval
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			wait = retry
			failed(err, wait)
		}
		timer.Reset(wait)
	}
}
