package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/query"
)

// eventReader serves the read endpoints from PostgreSQL; Stream hands out a
// page's events one by one as they are read.
type eventReader interface {
	Stream(ctx context.Context, f query.Filter, p query.Page, emit func(*query.Event) (bool, error)) (query.Summary, error)
	Get(ctx context.Context, id uuid.UUID) (query.Event, error)
	Histogram(ctx context.Context, f query.Filter) ([]query.Bucket, error)
}

// Query parameter rules of SPEC 2.5.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// The detail filter (SPEC 10): detail_key names a top-level member of
// event_data, so it is what such names are in practice, identifiers; the
// length bound keeps a parameter from being a payload.
var detailKeyPattern = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

const maxDetailKey = 100

// filterFields are the event fields GET /api/v1/audit/events filters on.
var filterFields = func() []audit.Field {
	var out []audit.Field
	for _, f := range audit.EventFields() {
		if f.Filter {
			out = append(out, f)
		}
	}
	return out
}()

// Pagination describes the page. TotalExact and NextCursor are ours.
type Pagination struct {
	Limit   int   `json:"limit"`
	Offset  int   `json:"offset"`
	Total   int64 `json:"total"`
	HasMore bool  `json:"has_more"`
	// TotalExact is false when more events match than the server counts;
	// Total is then a lower bound. HasMore is always exact.
	TotalExact bool   `json:"total_exact"`
	NextCursor string `json:"next_cursor,omitempty"`
}

type readHandlers struct {
	events       eventReader
	now          func() time.Time
	access       *access
	maxOffset    int
	maxPageBytes int
	writeTimeout time.Duration
}

func (h *readHandlers) queryEvents(c *gin.Context) {
	f, p, bad := h.parseQuery(c, h.now())
	if len(bad) > 0 {
		abortProblem(c, probQueryParam, fmt.Sprintf("%d query parameter(s) are invalid; see field_errors.", len(bad)), withFieldErrors(bad))
		return
	}
	if !h.access.restrictReads(c, &f) {
		return
	}
	w := &pageWriter{c: c, maxBytes: h.maxPageBytes, writeTimeout: h.writeTimeout}
	res, err := h.events.Stream(c.Request.Context(), f, p, w.event)
	switch {
	case err != nil && !w.started:
		readFailed(c, err)
		return
	case err != nil:
		w.abort(err)
		return
	}
	page := Pagination{Limit: p.Limit, Offset: p.Offset, Total: res.Total, HasMore: res.HasMore, TotalExact: res.TotalExact}
	if res.Next != nil {
		page.NextCursor = res.Next.Encode()
	}
	if err := w.finish(page); err != nil {
		w.abort(err)
	}
}

func (h *readHandlers) getEvent(c *gin.Context) {
	id, err := uuid.Parse(c.Param("event_id"))
	if err != nil {
		abortProblem(c, probQueryParam, "event_id must be a UUID.", withFieldErrors(map[string]string{"event_id": "must be a UUID"}))
		return
	}
	ev, err := h.events.Get(c.Request.Context(), id)
	// An event outside the principal's namespaces is answered exactly as
	// one that does not exist: its existence is not the caller's to know.
	if errors.Is(err, query.ErrNotFound) || (err == nil && !h.access.mayRead(c, ev.Namespace)) {
		abortProblem(c, probNotFound, fmt.Sprintf("No audit event with event_id %s is stored (yet: a just-accepted event appears once the writer has stored it).", id))
		return
	}
	if err != nil {
		readFailed(c, err)
		return
	}
	c.JSON(http.StatusOK, ev)
}

// readFailed answers a query the database did not serve. Every such error
// is one the client may retry; a statement timeout says to narrow the query.
func readFailed(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Header("Retry-After", retryAfterSeconds)
	abortProblem(c, probDatabase, "The query could not be served by PostgreSQL (unreachable, or it ran past the statement timeout: narrow the filters or the time range). Retry later.")
}

// parseDetail reads the detail_key/detail_value pair: both or neither, a
// key of the allowed form, a value PostgreSQL can compare (text without
// NUL).
func parseDetail(c *gin.Context, bad map[string]string) *query.Detail {
	key, value := c.Query("detail_key"), c.Query("detail_value")
	switch {
	case key == "" && value == "":
		return nil
	case key == "":
		bad["detail_key"] = "is required with detail_value"
	case value == "":
		bad["detail_value"] = "is required with detail_key"
	}
	if key != "" && (len(key) > maxDetailKey || !detailKeyPattern.MatchString(key)) {
		bad["detail_key"] = fmt.Sprintf("must be 1 to %d letters, digits or underscores (a top-level member of event_data)", maxDetailKey)
	}
	// The rule every filter value follows (no NUL, valid UTF-8), which a
	// field of no kind applies alone.
	if msg := (&audit.Field{}).FilterError(value); msg != "" {
		bad["detail_value"] = msg
	}
	return &query.Detail{Key: key, Value: value}
}

// parseEquals reads the equality filters of fields into f, reporting each
// value no stored one can equal in bad.
func parseEquals(c *gin.Context, fields []audit.Field, f *query.Filter, bad map[string]string) {
	for i := range fields {
		field := &fields[i]
		v := c.Query(field.Name)
		if v == "" {
			continue
		}
		if msg := field.FilterError(v); msg != "" {
			bad[field.Name] = msg
		}
		f.Equal[field.Name] = v
	}
}

// parseTimeRange reads the inclusive bounds named since and until (the
// forms of query.ParseTimeBound) into f, reporting each bad one, and a
// range that ends before it starts, in bad.
func parseTimeRange(c *gin.Context, now time.Time, since, until string, f *query.Filter, bad map[string]string) {
	for name, dst := range map[string]*time.Time{since: &f.Since, until: &f.Until} {
		if v, ok := c.GetQuery(name); ok {
			t, err := query.ParseTimeBound(v, now)
			if err != nil {
				bad[name] = err.Error()
				continue
			}
			*dst = t
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Since.After(f.Until) {
		bad[since] = "must not be after " + until
	}
}

// parseQuery reads every parameter of SPEC 2.5 and reports each bad one by
// name; nothing is clamped or guessed.
func (h *readHandlers) parseQuery(c *gin.Context, now time.Time) (query.Filter, query.Page, map[string]string) {
	bad := map[string]string{}
	f := parseFilter(c, now, bad)
	p := query.Page{Limit: defaultLimit}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			bad["limit"] = fmt.Sprintf("must be an integer from 1 to %d", maxLimit)
		}
		p.Limit = n
	}
	if v, ok := c.GetQuery("offset"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0:
			bad["offset"] = "must be an integer >= 0"
		case n > h.maxOffset:
			// PostgreSQL reads and discards every skipped row, so a deep
			// offset costs as much as reading that many: a few such
			// requests in parallel slow every read.
			bad["offset"] = fmt.Sprintf("must be at most %d; page deeper with cursor (pagination.next_cursor), whose cost does not grow with depth", h.maxOffset)
		}
		p.Offset = n
	}
	if v, ok := c.GetQuery("cursor"); ok {
		cur, err := query.DecodeCursor(v)
		switch {
		case err != nil:
			bad["cursor"] = "is not a cursor this service issued (use pagination.next_cursor)"
		case p.Offset != 0:
			bad["cursor"] = "cannot be combined with offset"
		default:
			p.After = &cur
		}
	}
	return f, p, bad
}

// parseFilter reads the filters and the time bounds that the query and the
// histogram share, adding each bad one to bad by name.
func parseFilter(c *gin.Context, now time.Time, bad map[string]string) query.Filter {
	f := query.Filter{Equal: map[string]string{}}
	parseEquals(c, filterFields, &f, bad)
	parseTimeRange(c, now, "since", "until", &f, bad)
	f.Detail = parseDetail(c, bad)
	return f
}
