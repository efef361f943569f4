package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffDoublesUpToTheCapAndResets(t *testing.T) {
	b := New(time.Millisecond, 5*time.Millisecond)
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
	require.False(t, New(time.Hour, time.Hour).Wait(ctx), "a cancelled context ends the wait at once")
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d / unit
	}
	return out
}
