package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/audit"
)

// ParseTimeBound reads a since/until value (SPEC 2.5) in any of its forms:
//   - relative, meaning that long before now: a Go duration ("30m", "24h",
//     "1h30m") or days ("7d", "1.5d");
//   - RFC 3339 with an offset ("2025-12-18T23:59:59Z", seconds optional),
//     as audit.ParseDateTime reads it;
//   - "2006-01-02T15:04:05", read as UTC;
//   - "2006-01-02", UTC midnight.
//
// Relative values must be positive: "0h" and "-5m" are rejected rather than
// read as now or the future.
func ParseTimeBound(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("must not be empty")
	}
	if d, ok, err := parseRelative(s); ok {
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d).UTC(), nil
	}
	// The write side's parser, so that a bound and an event_timestamp read
	// the same text (offsets up to 23:59, leap seconds) as the same instant.
	if t, ok := audit.ParseDateTime(s); ok {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a duration (30m, 24h, 7d, 1.5d), an RFC 3339 date-time, 2006-01-02T15:04:05 or 2006-01-02", s)
}

// parseRelative reports ok when s looks like a duration (it ends in a unit
// letter and starts with a digit or sign), and then whether it is valid.
func parseRelative(s string) (time.Duration, bool, error) {
	if !strings.ContainsAny(s[len(s)-1:], "dhmsuµn") || strings.ContainsAny(s, "-:T") && !strings.HasPrefix(s, "-") {
		return 0, false, nil
	}
	var d time.Duration
	if days, found := strings.CutSuffix(s, "d"); found {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, true, fmt.Errorf("%q is not a number of days, e.g. 7d or 1.5d", s)
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, true, fmt.Errorf("%q is not a duration, e.g. 30m or 24h", s)
		}
	}
	if d <= 0 {
		return 0, true, fmt.Errorf("%q must be a positive duration", s)
	}
	return d, true, nil
}
