package backoff

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// top draws the top of every range, so the waits are the ceilings.
func top(n int64) int64 { return n - 1 }

func TestBackoffDoublesUpToTheCapAndResets(t *testing.T) {
	b := Policy{First: time.Millisecond, Max: 5 * time.Millisecond}.New()
	b.draw = top
	b.Reset()
	var waits []time.Duration
	for range 5 {
		waits = append(waits, b.Next())
		require.True(t, b.Wait(t.Context()))
	}
	require.Equal(t, []time.Duration{1, 2, 4, 5, 5}, scale(waits, time.Millisecond))
	b.Reset()
	require.Equal(t, time.Millisecond, b.Next())
}

func TestBackoffStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.False(t, Policy{First: time.Hour, Max: time.Hour}.New().Wait(ctx), "a cancelled context ends the wait at once")
}

// TestJitterBounds: every wait lies in (0, ceiling], and the waits of one
// ceiling spread over its range, so two replicas do not retry in lockstep.
func TestJitterBounds(t *testing.T) {
	tests := []struct {
		name        string
		policy      Policy
		doublings   int
		wantCeiling time.Duration
	}{
		{"first", Policy{First: 100 * time.Millisecond, Max: 10 * time.Second}, 0, 100 * time.Millisecond},
		{"doubled", Policy{First: 100 * time.Millisecond, Max: 10 * time.Second}, 3, 800 * time.Millisecond},
		{"capped", Policy{First: 100 * time.Millisecond, Max: 10 * time.Second}, 20, 10 * time.Second},
		{"cap below first", Policy{First: time.Second, Max: 300 * time.Millisecond}, 0, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.policy.New()
			for range tt.doublings {
				b.ceiling = min(b.ceiling*2, b.policy.Max)
			}
			require.Equal(t, tt.wantCeiling, b.ceiling)
			const draws = 2000
			var lowest, highest time.Duration = tt.wantCeiling, 0
			for range draws {
				b.roll()
				require.Greater(t, b.Next(), time.Duration(0))
				require.LessOrEqual(t, b.Next(), tt.wantCeiling)
				lowest, highest = min(lowest, b.Next()), max(highest, b.Next())
			}
			// 2000 uniform draws all landing in one quarter of the
			// range has a chance of about 1 in 10^250.
			require.Less(t, lowest, tt.wantCeiling/4, "waits reach the bottom of the range")
			require.Greater(t, highest, tt.wantCeiling*3/4, "waits reach the top of the range")
		})
	}
}

func TestRetry(t *testing.T) {
	quick := Policy{First: time.Millisecond, Max: time.Millisecond}
	errDown := errors.New("connection refused")
	errDirty := errors.New("dirty schema")
	tests := []struct {
		name         string
		results      []error // one per attempt; the last repeats
		wantAttempts int
		wantErr      error
	}{
		{"first attempt succeeds", []error{nil}, 1, nil},
		{"transient errors are retried", []error{errDown, errDown, nil}, 3, nil},
		{"a permanent error stops the loop", []error{errDown, Permanent(errDirty), nil}, 2, errDirty},
		{"permanent at once", []error{Permanent(errDirty)}, 1, errDirty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts, notified := 0, 0
			err := Retry(t.Context(), quick, func(context.Context) error {
				attempts++
				return tt.results[min(attempts, len(tt.results))-1]
			}, func(attempt int, err error, wait time.Duration) {
				notified++
				require.Equal(t, attempts, attempt)
				require.ErrorIs(t, err, errDown)
				require.Greater(t, wait, time.Duration(0))
				require.LessOrEqual(t, wait, quick.Max)
			})
			require.Equal(t, tt.wantAttempts, attempts)
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, attempts-1, notified, "every failure is notified before its wait")
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			require.True(t, IsPermanent(err))
			require.Equal(t, tt.wantErr.Error(), err.Error(), "the mark does not change the message")
		})
	}
}

func TestRetryEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	errDown := errors.New("connection refused")
	attempts := 0
	err := Retry(ctx, Policy{First: time.Hour, Max: time.Hour}, func(context.Context) error {
		attempts++
		cancel()
		return errDown
	}, nil)
	require.Equal(t, 1, attempts)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, errDown, "the last error is kept for the log")
	require.False(t, IsPermanent(err))
}

func TestPermanentOfNilIsNil(t *testing.T) {
	require.NoError(t, Permanent(nil))
	require.False(t, IsPermanent(errors.New("x")))
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d / unit
	}
	return out
}

// TestEvery: the first run is at once, a failed one is followed sooner and
// reported with that wait, and the loop ends with its context.
func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var runs []time.Time
	var reported []time.Duration
	boom := errors.New("database down")
	start := time.Now()
	err := Every(ctx, time.Hour, 10*time.Millisecond, func(context.Context) error {
		runs = append(runs, time.Now())
		if len(runs) == 3 {
			cancel()
			return boom // ctx ended: not reported
		}
		return boom
	}, func(err error, wait time.Duration) {
		require.ErrorIs(t, err, boom)
		reported = append(reported, wait)
	})
	require.NoError(t, err)
	require.Len(t, runs, 3, "failed runs come again after retry, not the hour")
	require.Less(t, runs[0].Sub(start), time.Second, "the first run is at once")
	require.Equal(t, []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}, reported)
}
