package client

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 12, 13, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"5", 5 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.value, now)
		require.Equal(t, tt.ok, ok, "%q", tt.value)
		require.Equal(t, tt.want, got, "%q", tt.value)
	}
}

func TestJitterAbove(t *testing.T) {
	for range 1000 {
		got := jitterAbove(5 * time.Second)
		require.GreaterOrEqual(t, got, 5*time.Second)
		require.LessOrEqual(t, got, 6*time.Second)
	}
	require.Zero(t, jitterAbove(0))
}

// TestPerEvent checks which batch problems are split per event: only those
// whose every field error names an event of the batch.
func TestPerEvent(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]string
		want   map[int]map[string]string // nil: not per event
	}{
		{"two events", map[string]string{"[0].version": "a", "[0].event_type": "b", "[4].event_data": "c"},
			map[int]map[string]string{0: {"version": "a", "event_type": "b"}, 4: {"event_data": "c"}}},
		{"an element that is not an object", map[string]string{"[2]": "must be a JSON object"},
			map[int]map[string]string{2: {"": "must be a JSON object"}}},
		{"no field errors", nil, nil},
		{"a field of no event", map[string]string{"[0].version": "a", "version": "b"}, nil},
		{"an index past the batch", map[string]string{"[5].version": "a"}, nil},
		{"not a number", map[string]string{"[x].version": "a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Problem{Status: http.StatusBadRequest, Title: "Validation failed", FieldErrors: tt.fields, RequestID: "r"}
			got := perEvent(p, 5)
			if tt.want == nil {
				require.Nil(t, got)
				return
			}
			require.Len(t, got, len(tt.want))
			for i, fields := range tt.want {
				require.Equal(t, fields, got[i].FieldErrors)
				require.Equal(t, "r", got[i].RequestID)
				require.Equal(t, http.StatusBadRequest, got[i].Status)
			}
			require.Len(t, p.FieldErrors, len(tt.fields), "the batch's problem is left as it was")
		})
	}
}
