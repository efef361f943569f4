package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

var db *store.Store

func TestMain(m *testing.M) {
	os.Exit(func() int {
		ctx := context.Background()
		pg, err := testenv.StartPostgres(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pg.Close()
		if _, err := store.Migrate(ctx, pg.URL(), zap.NewNop()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if db, err = store.Open(ctx, store.Config{URL: pg.URL()}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer db.Close()
		return m.Run()
	}())
}

func TestParseTimeBound(t *testing.T) {
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "30m", want: now.Add(-30 * time.Minute)},
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.AddDate(0, 0, -7)},
		{in: "1.5d", want: now.Add(-36 * time.Hour)},
		{in: "2025-12-18T23:59:59Z", want: time.Date(2025, 12, 18, 23, 59, 59, 0, time.UTC)},
		{in: "2025-12-18T23:59:59.5+02:00", want: time.Date(2025, 12, 18, 21, 59, 59, 5e8, time.UTC)},
		{in: "2025-12-18T23:59:59", want: time.Date(2025, 12, 18, 23, 59, 59, 0, time.UTC)},
		{in: "2025-12-18", want: time.Date(2025, 12, 18, 0, 0, 0, 0, time.UTC)},
		{in: "", err: true},
		{in: "yesterday", err: true},
		{in: "-5m", err: true},
		{in: "0h", err: true},
		{in: "xd", err: true},
		{in: "2025-13-01", err: true},
		{in: "2025-12-18T23:59", err: true},
		{in: "2025-12-18T23:59:59+24:00", err: true},
		{in: "2016-12-31T23:59:60Z", want: time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{in: "2025-12-18T23:59Z", want: time.Date(2025, 12, 18, 23, 59, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTimeBound(tc.in, now)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want.Equal(got), "got %s want %s", got, tc.want)
			require.Equal(t, time.UTC, got.Location())
		})
	}
}

func TestCursor(t *testing.T) {
	c := Cursor{Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), EventID: uuid.New()}
	got, err := DecodeCursor(c.Encode())
	require.NoError(t, err)
	require.Equal(t, c, got)
	for _, bad := range []string{"", "!!", "AAAA", c.Encode()[:10], "Ag" + c.Encode()[2:]} {
		_, err := DecodeCursor(bad)
		require.ErrorIs(t, err, errBadCursor, bad)
	}
}

// TestPlansUseIndexes checks that every filter, alone and with a time
// range or a cursor, is answered by an index that also gives the
// newest-first order: with sorting and sequential scans disabled, any Sort
// or Seq Scan node left in the plan means no index could serve it. For the
// selective filters the plan must use the filter's own index; for
// event_outcome and event_category, with a handful of values, walking the
// time index and filtering is the right plan and is accepted.
func TestPlansUseIndexes(t *testing.T) {
	ctx := t.Context()
	seed(t, 5000)
	_, err := db.Pool().Exec(ctx, "ANALYZE audit_events")
	require.NoError(t, err)
	since := time.Now().Add(-24 * time.Hour)
	after := &Cursor{Timestamp: time.Now(), EventID: uuid.New()}
	filters := planFilters(t)
	for name, tc := range filters {
		for _, variant := range []string{"plain", "since", "cursor"} {
			t.Run(name+"/"+variant, func(t *testing.T) {
				f, page := tc.f, Page{Limit: 50}
				switch variant {
				case "since":
					f.Since = since
				case "cursor":
					page.After = after
				}
				pageSQL, args, _, _ := build(f, page, 10000)
				plan := explain(ctx, t, pageSQL, args)
				require.NotContains(t, plan, "Sort", plan)
				require.NotContains(t, plan, "Seq Scan", plan)
				require.Contains(t, plan, tc.index, plan)
			})
		}
	}
}

// planFilter is a filter and a part of the name of the index that must
// serve it.
type planFilter struct {
	f     Filter
	index string
}

// planFilters are the filters the plan tests check, one per filter of the
// field table and the restriction.
func planFilters(t *testing.T) map[string]planFilter {
	t.Helper()
	// index is a part of the per-partition index name PostgreSQL derives
	// from the columns (names are cut at 63 characters).
	filters := map[string]planFilter{
		"none":           {Filter{}, "Index Scan"},
		"event_type":     {Filter{Equal: map[string]string{"event_type": "t1"}}, "_event_type_event_times"},
		"event_category": {Filter{Equal: map[string]string{"event_category": "gateway"}}, "Index Scan"},
		"event_outcome":  {Filter{Equal: map[string]string{"event_outcome": "success"}}, "Index Scan"},
		"severity":       {Filter{Equal: map[string]string{"severity": "s1"}}, "_severity_event_times"},
		"correlation_id": {Filter{Equal: map[string]string{"correlation_id": "c1"}}, "_correlation_id_event_times"},
		"actor_id":       {Filter{Equal: map[string]string{"actor_id": "a1"}}, "_actor_id_event_times"},
		"resource_type":  {Filter{Equal: map[string]string{"resource_type": "R1"}}, "_resource_type_event_times"},
		"resource_id":    {Filter{Equal: map[string]string{"resource_id": "r1"}}, "_resource_id_event_times"},
		"resource both":  {Filter{Equal: map[string]string{"resource_type": "R1", "resource_id": "r1"}}, "_resource_"},
		"namespace":      {Filter{Equal: map[string]string{"namespace": "n1"}}, "_namespace_event_times"},
		// A principal restricted to one namespace reads through the same
		// index, whatever else it filters on.
		"restricted": {Filter{Namespaces: []string{"n1"}}, "_namespace_event_times"},
	}
	for _, col := range filterColumns {
		require.Contains(t, filters, col, "every filter of the field table is checked here (and has an index)")
	}
	return filters
}

func explain(ctx context.Context, t *testing.T, sql string, args []any) string {
	t.Helper()
	var plan []string
	err := pgx.BeginFunc(ctx, db.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	require.NoError(t, err)
	return strings.Join(plan, "\n")
}

func seed(t *testing.T, n int) []audit.Event {
	t.Helper()
	// Each filter value matches 2% of the rows or fewer, as in a real
	// trail, so the planner's choice reflects the indexes.
	s := func(prefix string, i int) *string { v := fmt.Sprintf("%s%d", prefix, i%50); return &v }
	categories := audit.DefaultCategories()
	outcomes := []string{"success", "failure", "pending"}
	events := make([]audit.Event, n)
	for i := range events {
		events[i] = audit.Event{
			EventID: uuid.New(), Version: "1", EventType: *s("t", i),
			EventTimestamp: time.Now().UTC().Truncate(time.Microsecond).Add(-time.Duration(i) * time.Minute),
			EventCategory:  categories[i%len(categories)], EventAction: "a", EventOutcome: outcomes[i%3],
			CorrelationID: fmt.Sprintf("c%d", i%500),
			Severity:      s("s", i), ActorID: s("a", i+1), ResourceType: s("R", i+2), ResourceID: s("r", i+3), Namespace: s("n", i+4),
			EventData: json.RawMessage(`{}`),
		}
	}
	_, err := db.Write(t.Context(), events, nil)
	require.NoError(t, err)
	return events
}

// TestNamespaceRestriction: a restricted filter returns only rows of its
// namespaces, never rows without one, and a namespace parameter outside
// it finds nothing.
func TestNamespaceRestriction(t *testing.T) {
	ctx := t.Context()
	r, err := NewReader(db.Pool(), Config{StatementTimeout: 5 * time.Second, CountCap: 100000})
	require.NoError(t, err)
	corr := "restricted-" + uuid.NewString()
	ns := func(v string) *string { return &v }
	var events []audit.Event
	for i, n := range []*string{ns("team-a"), ns("team-b"), ns("team-c"), nil, ns("team-a")} {
		events = append(events, audit.Event{
			EventID: uuid.New(), Version: "1", EventType: "t", EventTimestamp: time.Now().UTC().Truncate(time.Microsecond).Add(-time.Duration(i) * time.Second),
			EventCategory: "gateway", EventAction: "a", EventOutcome: "success", CorrelationID: corr, Namespace: n,
			EventData: json.RawMessage(`{}`),
		})
	}
	_, err = db.Write(ctx, events, nil)
	require.NoError(t, err)

	namespaces := func(f Filter) []string {
		f.Equal = map[string]string{"correlation_id": corr, "namespace": f.Equal["namespace"]}
		var out []string
		res, err := r.Stream(ctx, f, Page{Limit: 100}, func(e *Event) (bool, error) {
			out = append(out, *e.Namespace)
			return true, nil
		})
		require.NoError(t, err)
		require.Len(t, out, int(res.Total), "total counts under the same restriction")
		return out
	}
	require.Equal(t, []string{"team-a", "team-a"}, namespaces(Filter{Namespaces: []string{"team-a"}}))
	require.Equal(t, []string{"team-a", "team-b", "team-a"}, namespaces(Filter{Namespaces: []string{"team-a", "team-b"}}))
	require.Empty(t, namespaces(Filter{Namespaces: []string{"team-a"}, Equal: map[string]string{"namespace": "team-c"}}))
	require.Equal(t, []string{"team-b"}, namespaces(Filter{Namespaces: []string{"team-a", "team-b"}, Equal: map[string]string{"namespace": "team-b"}}))
}

func TestQueryRejectsUnknownFilter(t *testing.T) {
	r, err := NewReader(db.Pool(), Config{StatementTimeout: time.Second, CountCap: 100})
	require.NoError(t, err)
	for _, name := range []string{"event_data", "event_action", "event_type; DROP TABLE audit_events"} {
		_, err = r.Stream(t.Context(), Filter{Equal: map[string]string{name: "x"}}, Page{Limit: 1}, takeAll)
		require.EqualError(t, err, "query: "+name+" is not a filter")
	}
}

// TestStatementTimeout holds a lock that blocks the query: the statement
// timeout must end it, with an error the API answers 503.
func TestStatementTimeout(t *testing.T) {
	ctx := t.Context()
	r, err := NewReader(db.Pool(), Config{StatementTimeout: 200 * time.Millisecond, CountCap: 100})
	require.NoError(t, err)
	tx, err := db.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, "LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	_, err = r.Stream(ctx, Filter{}, Page{Limit: 10}, takeAll)
	require.Error(t, err)
	require.Equal(t, store.Outage, store.Classify(err), "a timed-out query is retryable: %v", err)
}

func takeAll(*Event) (bool, error) { return true, nil }

// TestStreamEndsWhereEmitSays: Stream hands out the page's events in order
// and ends after the limit or before the event emit refuses, with has_more
// and the cursor saying where to continue; emit's error ends the page.
func TestStreamEndsWhereEmitSays(t *testing.T) {
	r, err := NewReader(db.Pool(), Config{StatementTimeout: 5 * time.Second, SendTimeout: time.Second, CountCap: 100})
	require.NoError(t, err)
	corr := "stream-" + uuid.NewString()
	events := make([]audit.Event, 5)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range events {
		events[i] = audit.Event{EventID: uuid.New(), Version: "1", EventType: "t", EventTimestamp: now.Add(-time.Duration(i) * time.Second),
			EventCategory: "gateway", EventAction: "a", EventOutcome: "success", CorrelationID: corr, EventData: json.RawMessage(`{}`)}
	}
	_, err = db.Write(t.Context(), events, nil)
	require.NoError(t, err)
	f := Filter{Equal: map[string]string{"correlation_id": corr}}
	cursorAt := func(i int) *Cursor { return &Cursor{Timestamp: events[i].EventTimestamp, EventID: events[i].EventID} }

	tests := []struct {
		name   string
		limit  int
		refuse int // index emit refuses, -1 none
		want   int
		sum    Summary
	}{
		{"whole page", 10, -1, 5, Summary{Total: 5, TotalExact: true}},
		{"limit", 3, -1, 3, Summary{Total: 5, TotalExact: true, HasMore: true, Next: cursorAt(2)}},
		{"refused", 10, 2, 2, Summary{Total: 5, TotalExact: true, HasMore: true, Next: cursorAt(1)}},
		{"refused at the limit", 2, 2, 2, Summary{Total: 5, TotalExact: true, HasMore: true, Next: cursorAt(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []uuid.UUID
			sum, err := r.Stream(t.Context(), f, Page{Limit: tc.limit}, func(ev *Event) (bool, error) {
				if len(got) == tc.refuse {
					return false, nil
				}
				got = append(got, ev.EventID)
				return true, nil
			})
			require.NoError(t, err)
			require.Len(t, got, tc.want)
			for i, id := range got {
				require.Equal(t, events[i].EventID, id, "newest first")
			}
			require.Equal(t, tc.sum, sum)
		})
	}

	_, err = r.Stream(t.Context(), f, Page{Limit: 10}, func(*Event) (bool, error) { return false, nil })
	require.ErrorIs(t, err, errFirstRowRefused)
	broken := errors.New("client went away")
	_, err = r.Stream(t.Context(), f, Page{Limit: 10}, func(*Event) (bool, error) { return true, broken })
	require.ErrorIs(t, err, broken)
	sum, err := r.Stream(t.Context(), f, Page{Limit: 1}, takeAll)
	require.NoError(t, err, "the pool serves on after an abandoned page")
	require.True(t, sum.HasMore)
}

// TestHistogramPlansUseIndexes: the per-minute count of every filter over
// a day reads the filter's own index (or, for the few-valued ones and no
// filter, any index bounded by the time range), never a whole partition.
// A hash aggregate needs no sort.
func TestHistogramPlansUseIndexes(t *testing.T) {
	ctx := t.Context()
	seed(t, 5000)
	_, err := db.Pool().Exec(ctx, "ANALYZE audit_events")
	require.NoError(t, err)
	until := time.Now()
	for name, tc := range planFilters(t) {
		t.Run(name, func(t *testing.T) {
			f := tc.f
			f.Since, f.Until = until.Add(-MaxHistogramRange), until
			sql, args := buildHistogram(f)
			plan := explain(ctx, t, sql, args)
			require.NotContains(t, plan, "Sort", plan)
			require.NotContains(t, plan, "Seq Scan", plan)
			if tc.index == "Index Scan" {
				require.Contains(t, plan, "Index", plan)
			} else {
				require.Contains(t, plan, tc.index, plan)
			}
			require.Regexp(t, `Index Cond: .*event_timestamp >=`, plan, "the time range bounds the index scan")
		})
	}
}

// TestHistogram counts events per minute: every minute of the range has
// its bucket, the bounds are inclusive and cut the first and last minute,
// the filter and the namespace restriction hold, and a range the API
// would refuse is an error here too.
func TestHistogram(t *testing.T) {
	ctx := t.Context()
	r, err := NewReader(db.Pool(), Config{StatementTimeout: 5 * time.Second, CountCap: 100})
	require.NoError(t, err)
	corr := "histogram-" + uuid.NewString()
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	ns := func(v string) *string { return &v }
	// offsets from base, and the namespace of each event
	at := []struct {
		d  time.Duration
		ns *string
	}{
		{0, ns("a")}, {10 * time.Second, ns("a")}, {59*time.Second + 999999*time.Microsecond, ns("b")},
		{time.Minute, nil}, {3*time.Minute + 30*time.Second, ns("a")}, {10 * time.Minute, ns("a")},
	}
	events := make([]audit.Event, len(at))
	for i, a := range at {
		events[i] = audit.Event{EventID: uuid.New(), Version: "1", EventType: "t", EventTimestamp: base.Add(a.d),
			EventCategory: "gateway", EventAction: "a", EventOutcome: "success", CorrelationID: corr, Namespace: a.ns,
			EventData: json.RawMessage(`{}`)}
	}
	_, err = db.Write(ctx, events, nil)
	require.NoError(t, err)
	counts := func(f Filter) []int64 {
		t.Helper()
		f.Equal = map[string]string{"correlation_id": corr}
		buckets, err := r.Histogram(ctx, f)
		require.NoError(t, err)
		out := make([]int64, len(buckets))
		for i, b := range buckets {
			require.Equal(t, f.Since.Truncate(time.Minute).Add(time.Duration(i)*time.Minute), b.Start, "one bucket per minute, in order")
			require.Equal(t, time.UTC, b.Start.Location())
			out[i] = b.Count
		}
		return out
	}

	require.Equal(t, []int64{3, 1, 0, 1, 0}, counts(Filter{Since: base, Until: base.Add(4 * time.Minute)}))
	require.Equal(t, []int64{2, 1, 0, 1}, counts(Filter{Since: base.Add(10 * time.Second), Until: base.Add(3*time.Minute + 30*time.Second)}),
		"the bounds are inclusive and cut their minutes")
	require.Equal(t, []int64{1}, counts(Filter{Since: base.Add(20 * time.Second), Until: base.Add(time.Minute - time.Microsecond)}), "one minute")
	require.Equal(t, []int64{2, 0, 0, 1, 0}, counts(Filter{Since: base, Until: base.Add(4 * time.Minute), Namespaces: []string{"a"}}))
	day := counts(Filter{Since: base.Add(-23 * time.Hour), Until: base.Add(time.Hour)})
	require.Len(t, day, 24*60+1)
	var total int64
	for _, n := range day {
		total += n
	}
	require.EqualValues(t, len(events), total)

	for _, f := range []Filter{
		{Since: base},
		{Until: base},
		{Since: base, Until: base.Add(-time.Second)},
		{Since: base, Until: base.Add(MaxHistogramRange + time.Microsecond)},
	} {
		_, err := r.Histogram(ctx, f)
		require.Error(t, err, "%+v", f)
	}
}
