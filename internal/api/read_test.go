package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// readNow is the clock of the read tests: relative since/until values are
// measured from it.
var readNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// readDataset is a deterministic set of events spread over ten days, with
// every filterable field varied and some timestamps shared, so that the
// event_id tie-break matters.
func readDataset() []audit.Event {
	str := func(s string) *string { return &s }
	types := []string{"gateway.signal.received", "workflow.step.finished", "notification.message.sent"}
	categories := []string{"gateway", "workflow", "notification"}
	outcomes := []string{"success", "failure", "pending"}
	var events []audit.Event
	for i := range 240 {
		ev := audit.Event{
			EventID:        uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "read-%d", i)),
			Version:        "1.0",
			EventType:      types[i%3],
			EventTimestamp: readNow.Add(-time.Duration(i/2) * time.Hour), // pairs share a timestamp
			EventCategory:  categories[(i/3)%3],
			EventAction:    "act",
			EventOutcome:   outcomes[(i/9)%3],
			CorrelationID:  fmt.Sprintf("corr-%d", i%10),
			EventData:      json.RawMessage(fmt.Sprintf(`{"n": %d, "nested": {"ok": true}, "signal": "sig-%d", "attempt": %d}`, i, i%4, i%3)),
		}
		if i%3 == 0 {
			ev.SubmittedBy = str([]string{"svc-gateway", "kafka:unknown"}[(i/3)%2])
		}
		if i%2 == 0 {
			ev.Severity = str([]string{"info", "critical"}[(i/2)%2])
			ev.ActorID = str(fmt.Sprintf("actor-%d", i%4))
			ev.ActorType = str("service")
		}
		if i%5 == 0 {
			ev.ResourceType = str([]string{"Signal", "Pod"}[(i/5)%2])
			ev.ResourceID = str(fmt.Sprintf("res-%d", i%3))
			ev.Namespace = str([]string{"prod", "staging"}[(i/5)%2])
			ev.ClusterName = str("c1")
			d := int64(i)
			ev.DurationMS = &d
			p := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "parent-%d", i))
			ev.ParentEventID = &p
			ev.ActorIP = []netip.Addr{netip.MustParseAddr("192.0.2.5"), netip.MustParseAddr("2001:db8::5")}[(i/5)%2]
			ev.ClusterID, ev.ErrorCode, ev.ErrorMessage = str("cluster-uid"), str("E42"), str("disk full")
			ev.IsSensitive = i%10 == 0
			days := int32(30 + i)
			ev.RetentionDays = &days
		}
		events = append(events, ev)
	}
	return events
}

// readFixture serves reads from a database of its own holding readDataset.
func readFixture(t *testing.T, opts ...fixtureOption) (*fixture, []audit.Event) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	_, err := store.Migrate(t.Context(), pg.URL(), zap.NewNop())
	require.NoError(t, err)
	db := openStore(t, pg.URL())
	events := readDataset()
	res, err := db.Write(t.Context(), events, nil)
	require.NoError(t, err)
	require.Equal(t, len(events), res.Events)
	reader, err := query.NewReader(db.Pool(), query.Config{StatementTimeout: 5 * time.Second, CountCap: 100})
	require.NoError(t, err)
	f := newFixture(t, append([]fixtureOption{func(_ *api.Config, d *api.Deps) {
		d.Events = reader
		d.Now = func() time.Time { return readNow }
	}}, opts...)...)
	return f, events
}

type queryAnswer struct {
	Data []struct {
		EventID        string          `json:"event_id"`
		EventTimestamp string          `json:"event_timestamp"`
		EventDate      string          `json:"event_date"`
		EventData      json.RawMessage `json:"event_data"`
	} `json:"data"`
	Pagination api.Pagination `json:"pagination"`
}

func (f *fixture) query(t *testing.T, params url.Values) (response, queryAnswer) {
	t.Helper()
	res := f.do(http.MethodGet, "/api/v1/audit/events?"+params.Encode(), "", nil)
	var ans queryAnswer
	if res.status == http.StatusOK {
		require.NoError(t, json.Unmarshal(res.body, &ans))
	}
	return res, ans
}

// newestFirst returns the ids of the matching events in the API's order.
func newestFirst(events []audit.Event, match func(audit.Event) bool) []string {
	var m []audit.Event
	for _, e := range events {
		if match(e) {
			m = append(m, e)
		}
	}
	sort.Slice(m, func(i, j int) bool {
		if !m[i].EventTimestamp.Equal(m[j].EventTimestamp) {
			return m[i].EventTimestamp.After(m[j].EventTimestamp)
		}
		return m[i].EventID.String() > m[j].EventID.String()
	})
	ids := make([]string, len(m))
	for i, e := range m {
		ids[i] = e.EventID.String()
	}
	return ids
}

// detail matches what detail_key=key&detail_value=value selects: the
// member's JSON text, unquoted for a string.
func detail(key, value string) func(audit.Event) bool {
	return func(e audit.Event) bool {
		var m map[string]json.RawMessage
		if json.Unmarshal(e.EventData, &m) != nil {
			return false
		}
		raw, ok := m[key]
		if !ok {
			return false
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s == value
		}
		return string(raw) == value
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestQueryEvents(t *testing.T) {
	f, events := readFixture(t)
	at := func(h int) time.Time { return readNow.Add(-time.Duration(h) * time.Hour) }

	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			name   string
			params url.Values
			match  func(audit.Event) bool
		}{
			{"none", url.Values{}, func(audit.Event) bool { return true }},
			{"event_type", url.Values{"event_type": {"workflow.step.finished"}}, func(e audit.Event) bool { return e.EventType == "workflow.step.finished" }},
			{"event_category", url.Values{"event_category": {"notification"}}, func(e audit.Event) bool { return e.EventCategory == "notification" }},
			{"event_outcome", url.Values{"event_outcome": {"failure"}}, func(e audit.Event) bool { return e.EventOutcome == "failure" }},
			{"severity", url.Values{"severity": {"critical"}}, func(e audit.Event) bool { return deref(e.Severity) == "critical" }},
			{"correlation_id", url.Values{"correlation_id": {"corr-3"}}, func(e audit.Event) bool { return e.CorrelationID == "corr-3" }},
			{"actor_id", url.Values{"actor_id": {"actor-2"}}, func(e audit.Event) bool { return deref(e.ActorID) == "actor-2" }},
			{"resource_type", url.Values{"resource_type": {"Pod"}}, func(e audit.Event) bool { return deref(e.ResourceType) == "Pod" }},
			{"resource_id", url.Values{"resource_id": {"res-1"}}, func(e audit.Event) bool { return deref(e.ResourceID) == "res-1" }},
			{"namespace", url.Values{"namespace": {"staging"}}, func(e audit.Event) bool { return deref(e.Namespace) == "staging" }},
			{"combined", url.Values{"event_type": {"gateway.signal.received"}, "event_outcome": {"success"}, "severity": {"info"}},
				func(e audit.Event) bool {
					return e.EventType == "gateway.signal.received" && e.EventOutcome == "success" && deref(e.Severity) == "info"
				}},
			{"since relative 24h", url.Values{"since": {"24h"}}, func(e audit.Event) bool { return !e.EventTimestamp.Before(at(24)) }},
			{"since relative 1.5d", url.Values{"since": {"1.5d"}}, func(e audit.Event) bool { return !e.EventTimestamp.Before(at(36)) }},
			{"since days with correlation_id", url.Values{"since": {"2d"}, "correlation_id": {"corr-4"}},
				func(e audit.Event) bool { return !e.EventTimestamp.Before(at(48)) && e.CorrelationID == "corr-4" }},
			{"until RFC 3339 with offset, inclusive", url.Values{"until": {at(100).In(time.FixedZone("X", 2*3600)).Format(time.RFC3339)}},
				func(e audit.Event) bool { return !e.EventTimestamp.After(at(100)) }},
			{"since local form, inclusive", url.Values{"since": {at(10).Format("2006-01-02T15:04:05")}},
				func(e audit.Event) bool { return !e.EventTimestamp.Before(at(10)) }},
			{"since and until date form", url.Values{"since": {"2026-06-12"}, "until": {"2026-06-14"}},
				func(e audit.Event) bool {
					return !e.EventTimestamp.Before(time.Date(2026, 6, 12, 0, 0, 0, 0, time.UTC)) &&
						!e.EventTimestamp.After(time.Date(2026, 6, 14, 0, 0, 0, 0, time.UTC))
				}},
			{"no match", url.Values{"correlation_id": {"nope"}}, func(audit.Event) bool { return false }},
			{"detail", url.Values{"detail_key": {"signal"}, "detail_value": {"sig-1"}}, detail("signal", "sig-1")},
			{"detail with a time bound", url.Values{"detail_key": {"signal"}, "detail_value": {"sig-2"}, "since": {"24h"}},
				func(e audit.Event) bool { return detail("signal", "sig-2")(e) && !e.EventTimestamp.Before(at(24)) }},
			{"detail with correlation_id", url.Values{"detail_key": {"signal"}, "detail_value": {"sig-3"}, "correlation_id": {"corr-7"}},
				func(e audit.Event) bool { return detail("signal", "sig-3")(e) && e.CorrelationID == "corr-7" }},
			{"detail on a number, by its JSON text", url.Values{"detail_key": {"attempt"}, "detail_value": {"2"}}, detail("attempt", "2")},
			{"detail on a key no event has", url.Values{"detail_key": {"absent_key"}, "detail_value": {"x"}}, func(audit.Event) bool { return false }},
			{"detail value with a quote", url.Values{"detail_key": {"signal"}, "detail_value": {"sig-1' OR '1'='1"}}, func(audit.Event) bool { return false }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				want := newestFirst(events, tc.match)
				params := tc.params
				params.Set("limit", "1000")
				res, ans := f.query(t, params)
				require.Equal(t, http.StatusOK, res.status, "%s", res.body)
				var got []string
				for _, d := range ans.Data {
					got = append(got, d.EventID)
				}
				if len(want) == 0 {
					require.Empty(t, got)
				} else {
					require.Equal(t, want, got)
				}
				// The count reaches at least past the page, so with limit
				// 1000 every total here is exact.
				require.EqualValues(t, len(want), ans.Pagination.Total)
				require.True(t, ans.Pagination.TotalExact)
				require.False(t, ans.Pagination.HasMore)
			})
		}
	})

	t.Run("paging returns every event exactly once", func(t *testing.T) {
		// Unfiltered, past the count cap: has_more must be exact even when
		// total is not.
		want := newestFirst(events, func(audit.Event) bool { return true })
		for _, mode := range []string{"offset", "cursor"} {
			t.Run(mode, func(t *testing.T) {
				var got []string
				params := url.Values{"limit": {"7"}}
				for page := 0; ; page++ {
					require.Less(t, page, 100, "paging does not end")
					q := url.Values{"limit": params["limit"]}
					switch {
					case mode == "offset":
						q.Set("offset", fmt.Sprint(len(got)))
					case params.Get("cursor") != "":
						q.Set("cursor", params.Get("cursor"))
					}
					res, ans := f.query(t, q)
					require.Equal(t, http.StatusOK, res.status, "%s", res.body)
					for _, d := range ans.Data {
						got = append(got, d.EventID)
					}
					require.Equal(t, len(got) < len(want), ans.Pagination.HasMore, "has_more is exact")
					if page == 0 {
						require.EqualValues(t, 100, ans.Pagination.Total, "240 match; the count stops at the cap")
						require.False(t, ans.Pagination.TotalExact)
					}
					if !ans.Pagination.HasMore {
						require.Empty(t, ans.Pagination.NextCursor)
						break
					}
					require.NotEmpty(t, ans.Pagination.NextCursor)
					params.Set("cursor", ans.Pagination.NextCursor)
				}
				require.Equal(t, want, got)
			})
		}
	})

	t.Run("page and total agree", func(t *testing.T) {
		res, ans := f.query(t, url.Values{"correlation_id": {"corr-1"}, "limit": {"5"}, "offset": {"20"}})
		require.Equal(t, http.StatusOK, res.status)
		require.EqualValues(t, 24, ans.Pagination.Total)
		require.True(t, ans.Pagination.TotalExact)
		require.Len(t, ans.Data, 4)
		require.False(t, ans.Pagination.HasMore)
		require.Equal(t, api.Pagination{Limit: 5, Offset: 20, Total: 24, TotalExact: true}, ans.Pagination)
	})

	t.Run("rejections name the parameter", func(t *testing.T) {
		tests := []struct {
			params url.Values
			field  string
		}{
			{url.Values{"limit": {"0"}}, "limit"},
			{url.Values{"limit": {"1001"}}, "limit"},
			{url.Values{"limit": {"ten"}}, "limit"},
			{url.Values{"offset": {"-1"}}, "offset"},
			{url.Values{"event_outcome": {"maybe"}}, "event_outcome"},
			{url.Values{"since": {"yesterday"}}, "since"},
			{url.Values{"until": {"2026-13-01"}}, "until"},
			{url.Values{"since": {"-5m"}}, "since"},
			{url.Values{"since": {"2026-06-14"}, "until": {"2026-06-13"}}, "since"},
			{url.Values{"cursor": {"bm9wZQ"}}, "cursor"},
			{url.Values{"detail_key": {"sig'nal"}, "detail_value": {"x"}}, "detail_key"},
			{url.Values{"detail_key": {"sig-nal"}, "detail_value": {"x"}}, "detail_key"},
			{url.Values{"detail_key": {"sig nal"}, "detail_value": {"x"}}, "detail_key"},
			{url.Values{"detail_key": {strings.Repeat("k", 200)}, "detail_value": {"x"}}, "detail_key"},
			{url.Values{"detail_key": {"signal"}}, "detail_value"},
			{url.Values{"detail_value": {"sig-1"}}, "detail_key"},
			{url.Values{"detail_key": {"signal"}, "detail_value": {"a\x00b"}}, "detail_value"},
			{url.Values{"cursor": {query.Cursor{Timestamp: readNow, EventID: uuid.New()}.Encode()}, "offset": {"5"}}, "cursor"},
			{url.Values{"offset": {"10001"}}, "offset"},
			{url.Values{"offset": {"10000000"}}, "offset"},
			{url.Values{"correlation_id": {"\x00"}}, "correlation_id"},
			{url.Values{"event_type": {"a\x00b"}}, "event_type"},
			{url.Values{"actor_id": {"a\xffb"}}, "actor_id"},
			{url.Values{"namespace": {"\xc3"}}, "namespace"},
			{url.Values{"event_outcome": {"\x00"}}, "event_outcome"},
		}
		for _, tc := range tests {
			t.Run(tc.params.Encode(), func(t *testing.T) {
				res, _ := f.query(t, tc.params)
				require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
				p := res.json(t)
				require.Equal(t, "https://auditstream.dev/problems/invalid-query-parameter", p["type"])
				require.Contains(t, p["field_errors"], tc.field)
				require.Len(t, p["field_errors"], 1)
			})
		}
	})

	t.Run("deep offsets point to the cursor", func(t *testing.T) {
		res, ans := f.query(t, url.Values{"offset": {"10000"}, "limit": {"5"}})
		require.Equal(t, http.StatusOK, res.status, "the limit itself is allowed: %s", res.body)
		require.Empty(t, ans.Data)
		res, _ = f.query(t, url.Values{"offset": {"10001"}})
		require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
		require.Equal(t, map[string]any{"offset": "must be at most 10000; page deeper with cursor (pagination.next_cursor), whose cost does not grow with depth"},
			res.json(t)["field_errors"])
	})

	t.Run("filters PostgreSQL cannot compare are rejected by name", func(t *testing.T) {
		res, _ := f.query(t, url.Values{"correlation_id": {"\x00"}, "resource_id": {"\xff"}})
		require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
		require.Equal(t, map[string]any{"correlation_id": "must not contain NUL characters", "resource_id": "must be valid UTF-8"},
			res.json(t)["field_errors"])
	})

	t.Run("event by id round-trips every field", func(t *testing.T) {
		for _, i := range []int{0, 1, 3, 5, 10} {
			ev := events[i]
			res := f.do(http.MethodGet, "/api/v1/audit/events/"+ev.EventID.String(), "", nil)
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			got := res.json(t)
			want := map[string]any{}
			b, err := ev.MarshalJSON()
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &want))
			for _, k := range []string{"actor_type", "actor_id", "resource_type", "resource_id", "parent_event_id",
				"namespace", "cluster_name", "severity", "duration_ms", "actor_ip", "cluster_id", "error_code",
				"error_message", "retention_days"} {
				if _, ok := want[k]; !ok {
					want[k] = nil // absent optional fields come back as null
				}
			}
			if _, ok := want["is_sensitive"]; !ok {
				want["is_sensitive"] = false // the default, left out of the record
			}
			// Not in the record (the writer decides them), returned by
			// reads; this store keeps no hash chain.
			for _, k := range []string{"submitted_by", "chain_seq", "previous_event_hash", "event_hash", "hash_key_id", "hash_version"} {
				want[k] = nil
			}
			if ev.SubmittedBy != nil {
				want["submitted_by"] = *ev.SubmittedBy
			}
			want["event_date"] = ev.EventTimestamp.UTC().Format(time.DateOnly)
			require.Equal(t, want, got)
		}
		res := f.do(http.MethodGet, "/api/v1/audit/events/"+uuid.NewString(), "", nil)
		require.Equal(t, http.StatusNotFound, res.status)
		require.Equal(t, "https://auditstream.dev/problems/not-found", res.json(t)["type"])
		res = f.do(http.MethodGet, "/api/v1/audit/events/not-a-uuid", "", nil)
		require.Equal(t, http.StatusBadRequest, res.status)
	})
}

func TestQueryWithDatabaseDownAnswers503(t *testing.T) {
	pg := testenv.NewPostgres(t)
	db := openStore(t, pg.URL())
	reader, err := query.NewReader(db.Pool(), query.Config{StatementTimeout: time.Second, CountCap: 100})
	require.NoError(t, err)
	require.NoError(t, pg.Stop(t.Context()))
	f := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Events = reader })
	for _, path := range []string{"/api/v1/audit/events?limit=5", "/api/v1/audit/events/" + uuid.NewString()} {
		res := f.do(http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
		require.Equal(t, "https://auditstream.dev/problems/database-unavailable", res.json(t)["type"])
		require.Equal(t, "5", res.header.Get("Retry-After"))
	}
}

// TestQueryPagesAreCappedByBytes: a page ends before the event that would
// take it past the configured size, whatever the limit; has_more and
// next_cursor say where to continue, and following them (or the offset of
// the events received) returns every event exactly once, in order.
func TestQueryPagesAreCappedByBytes(t *testing.T) {
	const maxPageBytes = 2000 // a few events of the dataset (~600 bytes each)
	f, events := readFixture(t, func(c *api.Config, _ *api.Deps) { c.MaxPageBytes = maxPageBytes })
	want := newestFirst(events, func(audit.Event) bool { return true })
	for _, mode := range []string{"cursor", "offset"} {
		t.Run(mode, func(t *testing.T) {
			var got []string
			cursor := ""
			for page := 0; ; page++ {
				require.Less(t, page, 200, "paging does not end")
				q := url.Values{"limit": {"50"}}
				switch {
				case mode == "offset":
					q.Set("offset", fmt.Sprint(len(got)))
				case cursor != "":
					q.Set("cursor", cursor)
				}
				res := f.do(http.MethodGet, "/api/v1/audit/events?"+q.Encode(), "", nil)
				require.Equal(t, http.StatusOK, res.status, "%s", res.body)
				var ans struct {
					Data       []json.RawMessage `json:"data"`
					Pagination api.Pagination    `json:"pagination"`
				}
				require.NoError(t, json.Unmarshal(res.body, &ans))
				require.NotEmpty(t, ans.Data)
				size := 0
				for _, d := range ans.Data {
					size += len(d)
					var ev struct {
						EventID string `json:"event_id"`
					}
					require.NoError(t, json.Unmarshal(d, &ev))
					got = append(got, ev.EventID)
				}
				require.LessOrEqual(t, size, maxPageBytes, "the events of a page fit the cap")
				require.Less(t, len(ans.Data), 50, "the cap, not the limit, ended the page")
				require.Equal(t, 50, ans.Pagination.Limit)
				require.Equal(t, len(got) < len(want), ans.Pagination.HasMore, "has_more is exact")
				if !ans.Pagination.HasMore {
					require.Empty(t, ans.Pagination.NextCursor)
					break
				}
				require.NotEmpty(t, ans.Pagination.NextCursor)
				cursor = ans.Pagination.NextCursor
			}
			require.Equal(t, want, got)
		})
	}

	// An event larger than the cap still makes a page of one.
	one, _ := readFixture(t, func(c *api.Config, _ *api.Deps) { c.MaxPageBytes = 10 })
	res := one.do(http.MethodGet, "/api/v1/audit/events?limit=5", "", nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	var ans queryAnswer
	require.NoError(t, json.Unmarshal(res.body, &ans))
	require.Len(t, ans.Data, 1)
	require.True(t, ans.Pagination.HasMore)
	require.Equal(t, want[0], ans.Data[0].EventID)
}
