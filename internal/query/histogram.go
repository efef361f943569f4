package query

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BucketWidth is the width of a histogram bucket: the console charts
// events per minute.
const BucketWidth = time.Minute

// MaxHistogramRange is the longest since–until range a histogram covers:
// a day of minutes is 1,441 buckets at most, a chart a person can read and
// a count the filter's index answers within the statement timeout.
const MaxHistogramRange = 24 * time.Hour

// Bucket counts the matching events whose event_timestamp falls in
// [Start, Start+BucketWidth) and within the filter's bounds.
type Bucket struct {
	Start time.Time `json:"start"`
	Count int64     `json:"count"`
}

// Histogram counts the events matching f per minute, from the minute of
// f.Since through the minute of f.Until, both of which must be set and at
// most MaxHistogramRange apart. Every minute has its bucket, in time
// order, the empty ones with count 0, so a chart needs no gap-filling.
//
// The counts come from the same WHERE clause as a page (Filter.where), so
// a filter, the namespace restriction and the time bound mean the same
// here; the filter's index, whose second column is event_timestamp,
// yields just the rows of the range. The first and last buckets count
// only the part of their minute inside the bounds.
func (r *Reader) Histogram(ctx context.Context, f Filter) ([]Bucket, error) {
	if f.Since.IsZero() || f.Until.IsZero() || f.Until.Before(f.Since) || f.Until.Sub(f.Since) > MaxHistogramRange {
		return nil, errors.New("query: a histogram needs since <= until, at most 24h apart")
	}
	first := f.Since.UTC().Truncate(BucketWidth)
	buckets := make([]Bucket, int(f.Until.UTC().Truncate(BucketWidth).Sub(first)/BucketWidth)+1)
	for i := range buckets {
		buckets[i].Start = first.Add(time.Duration(i) * BucketWidth)
	}
	sql, args := buildHistogram(f)
	err := r.readOnly(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("count events per minute: %w", err)
		}
		var start time.Time
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&start, &n}, func() error {
			i := int(start.Sub(first) / BucketWidth)
			if i < 0 || i >= len(buckets) {
				return fmt.Errorf("count events per minute: bucket %s outside %s..%s", start, f.Since, f.Until)
			}
			buckets[i].Count = n
			return nil
		})
		if err != nil {
			return fmt.Errorf("count events per minute: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return buckets, nil
}

// buildHistogram renders the per-minute count. date_bin, unlike
// date_trunc, does not depend on the session's time zone. There is no
// ORDER BY: the groups are few and Histogram places each by its start.
func buildHistogram(f Filter) (string, []any) {
	where, args := f.where()
	return fmt.Sprintf(`SELECT date_bin('%d seconds', event_timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket, count(*)
		FROM audit_events%s GROUP BY bucket`, int(BucketWidth.Seconds()), where), args
}
