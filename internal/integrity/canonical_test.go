package integrity

import (
	"testing"
	"time"
)

func TestAppendTime(t *testing.T) {
	east := time.FixedZone("UTC+5:30", 5*3600+1800)
	for _, tm := range []time.Time{
		time.Date(2026, 12, 1, 17, 4, 5, 123456789, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 3, 0, 0, 999, east), // the day before in UTC, sub-microsecond dropped
		time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // beyond four digits: the layout's own rendering
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
	} {
		want := tm.UTC().AppendFormat(nil, timeLayout)
		if got := appendTime(nil, tm); string(got) != string(want) {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
