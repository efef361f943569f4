package errclass

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassString(t *testing.T) {
	require.Equal(t, "outage", Outage.String())
	require.Equal(t, "failed", Failed.String())
	require.Equal(t, "poison", Poison.String())
	require.Equal(t, "conflict", Conflict.String())
	require.Equal(t, "none", None.String())
}

func TestOf(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, None},
		{"classified", &Error{Class: Poison, Err: cause}, Poison},
		{"wrapped", fmt.Errorf("flush: %w", &Error{Class: Failed, Err: cause}), Failed},
		{"joined", errors.Join(errors.New("rollback"), &Error{Class: Failed, Err: cause}), Failed},
		{"unclassified", cause, Outage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Of(tt.err))
		})
	}
	e := &Error{Class: Poison, Err: fmt.Errorf("copy: %w", cause)}
	require.ErrorIs(t, e, cause, "the cause stays reachable")
	require.Equal(t, "copy: boom", e.Error(), "the message is the cause's")
}
