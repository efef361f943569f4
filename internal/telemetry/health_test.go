package telemetry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHealthCheckJoinsFailuresAndBoundsTime(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := NewHealth(map[string]Check{
		"good":  func(context.Context) error { return nil },
		"bad":   func(context.Context) error { return errors.New("down") },
		"stuck": func(context.Context) error { <-release; return nil }, // ignores its context
	})
	h.timeout = 100 * time.Millisecond
	err := h.Check(context.Background())
	require.EqualError(t, err, "bad: down\nstuck: no answer within 100ms")
	require.NoError(t, NewHealth(map[string]Check{"good": func(context.Context) error { return nil }}).Check(context.Background()))

	ok, reason := h.Ready()
	require.False(t, ok)
	require.Equal(t, "starting", reason)
	h.SetReady()
	ok, _ = h.Ready()
	require.True(t, ok)
}
