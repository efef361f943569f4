// Package query owns the read side: the SQL behind GET /api/v1/audit/events
// and GET /api/v1/audit/events/{event_id}, straight from PostgreSQL. Every
// filter of SPEC 2.5 maps to an index that also yields the newest-first
// order, so a page is an index range scan; a page and its total are read in
// one snapshot; deep reads use keyset cursors, whose cost does not grow with
// depth.
package query

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned by Get for an unknown event_id.
var ErrNotFound = errors.New("event not found")

// errBadCursor is returned for a cursor this service did not issue.
var errBadCursor = errors.New("invalid cursor")

// Filter selects events; zero fields do not filter. Bounds are inclusive.
type Filter struct {
	EventType, EventCategory, EventOutcome, Severity, CorrelationID string
	ActorID, ResourceType, ResourceID, Namespace                    string
	Since, Until                                                    time.Time
}

// Page selects a window of the newest-first order: Offset rows skipped, or,
// when After is set, the rows after that cursor.
type Page struct {
	Limit  int
	Offset int
	After  *Cursor
}

// Cursor is a position in the newest-first order: the last row of a page.
type Cursor struct {
	Timestamp time.Time
	EventID   uuid.UUID
}

// cursorVersion prefixes encoded cursors so their format can change.
const cursorVersion = 1

// Encode returns the opaque form handed to clients.
func (c Cursor) Encode() string {
	b := make([]byte, 0, 1+8+16)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Timestamp.UnixMicro()))
	b = append(b, c.EventID[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor produced by Encode.
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 1+8+16 || b[0] != cursorVersion {
		return Cursor{}, errBadCursor
	}
	id, _ := uuid.FromBytes(b[9:])
	return Cursor{Timestamp: time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:9]))).UTC(), EventID: id}, nil
}

// Event is an audit event as stored (SPEC 2.5 AuditEvent): every request
// field, nulls as null, plus event_date.
type Event struct {
	EventID        uuid.UUID       `json:"event_id"`
	Version        string          `json:"version"`
	EventType      string          `json:"event_type"`
	EventTimestamp time.Time       `json:"event_timestamp"`
	EventDate      string          `json:"event_date"`
	EventCategory  string          `json:"event_category"`
	EventAction    string          `json:"event_action"`
	EventOutcome   string          `json:"event_outcome"`
	ActorType      *string         `json:"actor_type"`
	ActorID        *string         `json:"actor_id"`
	ResourceType   *string         `json:"resource_type"`
	ResourceID     *string         `json:"resource_id"`
	CorrelationID  string          `json:"correlation_id"`
	ParentEventID  *uuid.UUID      `json:"parent_event_id"`
	Namespace      *string         `json:"namespace"`
	ClusterName    *string         `json:"cluster_name"`
	Severity       *string         `json:"severity"`
	DurationMS     *int64          `json:"duration_ms"`
	EventData      json.RawMessage `json:"event_data"`
}

// Result is one page.
type Result struct {
	Events []Event
	// Total counts every matching event, exactly when TotalExact; when more
	// match than the count cap, Total is the cap and TotalExact false.
	Total      int64
	TotalExact bool
	// HasMore is always exact: another row exists after this page.
	HasMore bool
	// Next continues after this page (nil on the last page).
	Next *Cursor
}

// Config tunes the reader.
type Config struct {
	// StatementTimeout bounds each query, so one expensive filter cannot
	// hold a pooled connection for long.
	StatementTimeout time.Duration
	// CountCap bounds how many rows a total counts: an exact count of tens
	// of millions of rows costs seconds, while "10,000 or more" is what a
	// person paging needs to know.
	CountCap int
}

// Reader runs the queries.
type Reader struct {
	pool *pgxpool.Pool
	cfg  Config
}

// NewReader returns a Reader on pool.
func NewReader(pool *pgxpool.Pool, cfg Config) (*Reader, error) {
	if cfg.StatementTimeout <= 0 || cfg.CountCap <= 0 {
		return nil, errors.New("query: statement timeout and count cap must be positive")
	}
	return &Reader{pool: pool, cfg: cfg}, nil
}

const selectColumns = `event_id, version, event_type, event_timestamp, event_date, event_category,
	event_action, event_outcome, actor_type, actor_id, resource_type, resource_id, correlation_id,
	parent_event_id, namespace, cluster_name, severity, duration_ms, event_data`

// Query returns one page of the events matching f, newest first, and the
// total, both from one snapshot.
func (r *Reader) Query(ctx context.Context, f Filter, p Page) (Result, error) {
	countCap := max(r.cfg.CountCap, p.Offset+p.Limit+1)
	pageSQL, args, countSQL, countArgs := build(f, p, countCap)

	var res Result
	err := r.readOnly(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, pageSQL, args...)
		if err != nil {
			return fmt.Errorf("query events: %w", err)
		}
		if res.Events, err = pgx.CollectRows(rows, scanEvent); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if err := tx.QueryRow(ctx, countSQL, countArgs...).Scan(&res.Total); err != nil {
			return fmt.Errorf("count events: %w", err)
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	res.TotalExact = res.Total < int64(countCap)
	if len(res.Events) > p.Limit {
		res.HasMore = true
		res.Events = res.Events[:p.Limit]
		last := res.Events[len(res.Events)-1]
		res.Next = &Cursor{Timestamp: last.EventTimestamp, EventID: last.EventID}
	}
	if res.Events == nil {
		res.Events = []Event{}
	}
	return res, nil
}

// build renders the page query (one row more than the limit, so has_more
// is exact) and the capped count query.
func build(f Filter, p Page, countCap int) (pageSQL string, args []any, countSQL string, countArgs []any) {
	where, args := f.where()
	countWhere, countArgs := where, args
	if p.After != nil {
		args = append(args[:len(args):len(args)], p.After.Timestamp, [16]byte(p.After.EventID))
		where = appendCond(where, fmt.Sprintf("(event_timestamp, event_id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	pageSQL = fmt.Sprintf(`SELECT %s FROM audit_events%s ORDER BY event_timestamp DESC, event_id DESC LIMIT %d OFFSET %d`,
		selectColumns, where, p.Limit+1, p.Offset)
	countSQL = fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM audit_events%s LIMIT %d) matching`, countWhere, countCap)
	return pageSQL, args, countSQL, countArgs
}

// Get returns one event by id: its timestamp from audit_event_ids points
// the lookup at a single partition.
func (r *Reader) Get(ctx context.Context, id uuid.UUID) (Event, error) {
	var ev Event
	err := r.readOnly(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+selectColumns+` FROM audit_events
			WHERE event_id = $1 AND event_timestamp = (SELECT event_timestamp FROM audit_event_ids WHERE event_id = $1)`,
			[16]byte(id))
		if err != nil {
			return fmt.Errorf("get event: %w", err)
		}
		ev, err = pgx.CollectExactlyOneRow(rows, scanEvent)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	return ev, err
}

// readOnly runs fn in a read-only REPEATABLE READ transaction (one
// snapshot for a page and its count) under the statement timeout.
func (r *Reader) readOnly(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			ms := strconv.FormatInt(r.cfg.StatementTimeout.Milliseconds(), 10)
			if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", ms); err != nil {
				return fmt.Errorf("set statement timeout: %w", err)
			}
			return fn(tx)
		})
}

// where renders the filter as a WHERE clause with positional arguments.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			args = append(args, v)
			conds = append(conds, fmt.Sprintf("%s = $%d", col, len(args)))
		}
	}
	eq("event_type", f.EventType)
	eq("event_category", f.EventCategory)
	eq("event_outcome", f.EventOutcome)
	eq("severity", f.Severity)
	eq("correlation_id", f.CorrelationID)
	eq("actor_id", f.ActorID)
	eq("resource_type", f.ResourceType)
	eq("resource_id", f.ResourceID)
	eq("namespace", f.Namespace)
	if !f.Since.IsZero() {
		args = append(args, f.Since)
		conds = append(conds, fmt.Sprintf("event_timestamp >= $%d", len(args)))
	}
	if !f.Until.IsZero() {
		args = append(args, f.Until)
		conds = append(conds, fmt.Sprintf("event_timestamp <= $%d", len(args)))
	}
	if len(conds) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func appendCond(where, cond string) string {
	if where == "" {
		return " WHERE " + cond
	}
	return where + " AND " + cond
}

func scanEvent(row pgx.CollectableRow) (Event, error) {
	var (
		e        Event
		id       [16]byte
		parent   pgtype.UUID
		date     time.Time
		rawData  []byte
		duration pgtype.Int8
	)
	err := row.Scan(&id, &e.Version, &e.EventType, &e.EventTimestamp, &date, &e.EventCategory,
		&e.EventAction, &e.EventOutcome, &e.ActorType, &e.ActorID, &e.ResourceType, &e.ResourceID,
		&e.CorrelationID, &parent, &e.Namespace, &e.ClusterName, &e.Severity, &duration, &rawData)
	if err != nil {
		return Event{}, err
	}
	e.EventID = id
	e.EventTimestamp = e.EventTimestamp.UTC()
	e.EventDate = date.Format(time.DateOnly)
	if parent.Valid {
		u := uuid.UUID(parent.Bytes)
		e.ParentEventID = &u
	}
	if duration.Valid {
		e.DurationMS = &duration.Int64
	}
	e.EventData = rawData
	return e, nil
}
