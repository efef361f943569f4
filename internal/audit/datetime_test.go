package audit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestParseDateTimeLeapSecond: RFC 3339 allows second 60 for a leap second;
// time.Time cannot hold it, so the whole leap second is stored as the last
// microsecond before the next second, keeping the day, the month (and so
// the partition) and the order before anything stamped in the next second.
func TestParseDateTimeLeapSecond(t *testing.T) {
	last := time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)
	for _, s := range []string{
		"2016-12-31T23:59:60Z",
		"2016-12-31T23:59:60.000Z",
		"2016-12-31T23:59:60.999999999Z",
		"2016-12-31T15:59:60-08:00",
		"2017-01-01T05:29:60+05:30",
	} {
		t.Run(s, func(t *testing.T) {
			got, ok := ParseDateTime(s)
			require.True(t, ok)
			require.Equal(t, last, got)
		})
	}
}

// TestParseDateTimeOffsetRange: RFC 3339 offsets are at most 23:59 either
// way; time.Parse takes +24:00 and shifts the instant by a whole day.
func TestParseDateTimeOffsetRange(t *testing.T) {
	got, ok := ParseDateTime("2025-12-13T23:59:00+23:59")
	require.True(t, ok)
	require.Equal(t, time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC), got)
	for _, s := range []string{"2025-12-13T02:00:00+24:00", "2025-12-13T02:00-24:00", "2025-12-13T02:00:00+00:60", "2025-12-13T02:00:00+99:00"} {
		_, ok := ParseDateTime(s)
		require.False(t, ok, s)
	}
}
