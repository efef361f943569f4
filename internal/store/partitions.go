package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/backoff"
)

// maxPartitionsPerCall caps EnsurePartitions: a range wider than this many
// months (a typo'd year, a record from year 1) is refused instead of
// creating thousands of tables. Writers create partitions for the months
// their rows are in (EnsurePartitionsFor), which this cap does not limit.
const maxPartitionsPerCall = 240

// monthStart returns the first instant of t's month in UTC: the lower bound
// of the partition that holds t.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PartitionName returns the name of the audit_events partition holding t,
// audit_events_pYYYYMM for t's month in UTC.
func PartitionName(t time.Time) string {
	return "audit_events_p" + monthStart(t).Format("200601")
}

// EnsurePartitions creates every audit_events partition needed to store
// rows with event_timestamp in [from, to]: one per UTC month. Existing
// partitions are left alone, so calling it again, or from several
// processes at once, is safe.
func (s *Store) EnsurePartitions(ctx context.Context, from, to time.Time) error {
	if to.Before(from) {
		return fmt.Errorf("ensure partitions: range ends (%s) before it starts (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	var months []time.Time
	for m := monthStart(from); !m.After(to); m = m.AddDate(0, 1, 0) {
		if len(months) == maxPartitionsPerCall {
			return fmt.Errorf("ensure partitions: [%s, %s] spans more than %d months",
				from.Format(time.RFC3339), to.Format(time.RFC3339), maxPartitionsPerCall)
		}
		months = append(months, m)
	}
	return s.ensureMonths(ctx, months)
}

// EnsurePartitionsFor creates the partitions holding each of times (the
// event timestamps of a batch, typically) that do not exist yet. Unlike
// EnsurePartitions over the batch's min and max, a batch with one very old
// row creates one old partition, not every month in between.
func (s *Store) EnsurePartitionsFor(ctx context.Context, times ...time.Time) error {
	months := make([]time.Time, 0, len(times))
	for _, t := range times {
		months = append(months, monthStart(t))
	}
	slices.SortFunc(months, time.Time.Compare)
	return s.ensureMonths(ctx, slices.Compact(months))
}

// ensureMonths creates the partitions of the given month starts that are
// missing: one query finds the missing ones (usually none), then each is
// created in its own transaction, so a long range never holds many
// ACCESS EXCLUSIVE locks at once.
func (s *Store) ensureMonths(ctx context.Context, months []time.Time) error {
	if len(months) == 0 {
		return nil
	}
	names := make([]string, len(months))
	for i, m := range months {
		names[i] = PartitionName(m)
	}
	rows, err := s.pool.Query(ctx,
		`SELECT i FROM unnest($1::text[]) WITH ORDINALITY AS p(name, i) WHERE to_regclass(quote_ident(p.name)) IS NULL`,
		names)
	if err != nil {
		return fmt.Errorf("ensure partitions: %w", err)
	}
	var missing []int64
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			rows.Close()
			return fmt.Errorf("ensure partitions: %w", err)
		}
		missing = append(missing, i-1) // ORDINALITY counts from 1
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ensure partitions: %w", err)
	}
	for _, i := range missing {
		var name string
		if err := s.pool.QueryRow(ctx, `SELECT audit_events_ensure_partition($1)`, months[i]).Scan(&name); err != nil {
			return fmt.Errorf("ensure partition %s: %w", names[i], err)
		}
		s.log.Info("partition ready", zap.String("partition", name))
	}
	return nil
}

// EnsurePartitionsAhead creates the partitions of the current month and
// the configured months ahead (Config.PartitionsAhead) that are missing,
// so that a month never starts without its partition. The writer's
// maintenance loop calls it (internal/lifecycle).
func (s *Store) EnsurePartitionsAhead(ctx context.Context) error {
	now := time.Now()
	return s.EnsurePartitions(ctx, now, now.AddDate(0, s.ahead, 0))
}

// runPeriodically runs fn at once and then every interval until ctx ends
// (then it returns nil). A failure, such as the database being down, is
// logged as what failed and tried again after maintenanceRetryInterval; it
// never stops the loop.
func (s *Store) runPeriodically(ctx context.Context, interval time.Duration, what string, fn func(context.Context) error) error {
	return backoff.Every(ctx, interval, maintenanceRetryInterval, fn, func(err error, wait time.Duration) {
		s.log.Warn(what+" failed", zap.Error(err), zap.Duration("retry_in", wait))
	})
}
