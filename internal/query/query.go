// Package query owns the read side: the SQL behind GET /api/v1/audit/events
// and GET /api/v1/audit/events/{event_id}, straight from PostgreSQL. Every
// filter of SPEC 2.5 maps to an index that also yields the newest-first
// order, so a page is an index range scan; a page and its total are read in
// one snapshot; a page is streamed to the client as it is read; deep reads
// use keyset cursors, whose cost does not grow with depth.
package query

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditstream/auditstream/internal/audit"
)

// ErrNotFound is returned by Get for an unknown event_id.
var ErrNotFound = errors.New("event not found")

// errBadCursor is returned for a cursor this service did not issue.
var errBadCursor = errors.New("invalid cursor")

// Filter selects events; zero fields do not filter. Bounds are inclusive.
type Filter struct {
	// Equal holds column = value conditions by field name, for the fields
	// audit's table marks Filter; an empty value does not filter.
	Equal        map[string]string
	Since, Until time.Time
	// Detail, when set, keeps the events whose event_data has Key at its
	// top level with Value as its text (SPEC 10 detail_key/detail_value).
	Detail *Detail
	// Namespaces, when not empty, limits the rows to these namespace
	// values: a principal's restriction (SPEC 8.1). It comes from the
	// credential, never from a parameter, and holds on every page, so no
	// parameter or cursor lifts it; rows without a namespace are outside
	// it.
	Namespaces []string
}

// Detail is an equality on a top-level member of event_data:
// event_data->>Key = Value. ->> renders a number or a boolean as its JSON
// text, so Value "5" matches {"attempt": 5} as well as {"attempt": "5"};
// an object or array member matches its JSON text, and a null one never.
// No index serves it: it narrows what the other filters and the time
// bound select (bench/README.md has the numbers on 10 M rows).
type Detail struct {
	Key, Value string
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

// Event is an audit event as stored (SPEC 2.5 AuditEvent): every field of
// audit's table, absent ones as null.
type Event audit.Event

// MarshalJSON writes the AuditEvent form (audit.Event.AppendStoredJSON). A
// value receiver, so that encoding/json uses it for an Event that is not
// addressable too.
func (e Event) MarshalJSON() ([]byte, error) {
	ev := audit.Event(e)
	return ev.AppendStoredJSON(make([]byte, 0, 512+len(e.EventData))), nil
}

// selectFields are the fields reads return, all of the table, and
// selectColumns their select list; filterColumns are those a Filter may
// name, in table order (the same filter always renders the same SQL).
var selectFields, selectColumns, filterColumns = func() ([]audit.Field, string, []string) {
	fields := audit.EventFields()
	names := make([]string, len(fields))
	var filters []string
	for i, f := range fields {
		names[i] = f.Name
		if f.Filter {
			filters = append(filters, f.Name)
		}
	}
	return fields, strings.Join(names, ", "), filters
}()

// Summary describes a page that Stream has handed out.
type Summary struct {
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
	// SendTimeout is how long a page may take to reach the client. Stream
	// reads rows from PostgreSQL as the client takes them, so the page
	// query's statement timeout is StatementTimeout plus this.
	SendTimeout time.Duration
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
	if cfg.StatementTimeout <= 0 || cfg.CountCap <= 0 || cfg.SendTimeout < 0 {
		return nil, errors.New("query: statement timeout and count cap must be positive, send timeout not negative")
	}
	return &Reader{pool: pool, cfg: cfg}, nil
}

// errFirstRowRefused: a page always holds its first row, so that paging
// moves on even past an event larger than the caller's budget.
var errFirstRowRefused = errors.New("query: emit refused the first row of a page")

// Stream reads one page of the events matching f, newest first, handing
// each to emit as it is read from PostgreSQL, so a page is never held in
// memory whole. The total is counted first, in the same snapshot.
//
// The page ends after p.Limit events, or before the event for which emit
// returns false (a caller's byte budget; emit must take the first one):
// that event is not part of the page, HasMore is true and Next continues
// at it. An error from emit ends the page and is returned; the query is
// then cancelled rather than read to its end.
func (r *Reader) Stream(ctx context.Context, f Filter, p Page, emit func(*Event) (bool, error)) (Summary, error) {
	if err := f.check(); err != nil {
		return Summary{}, err
	}
	countCap := max(r.cfg.CountCap, p.Offset+p.Limit+1)
	pageSQL, args, countSQL, countArgs := build(f, p, countCap)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var s Summary
	var last Cursor // of the page's last event
	err := r.readOnly(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, countSQL, countArgs...).Scan(&s.Total); err != nil {
			return fmt.Errorf("count events: %w", err)
		}
		if err := setStatementTimeout(ctx, tx, r.cfg.StatementTimeout+r.cfg.SendTimeout); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, pageSQL, args...)
		if err != nil {
			return fmt.Errorf("query events: %w", err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			if n == p.Limit {
				s.HasMore = true
				break
			}
			ev, err := scanEvent(rows)
			if err != nil {
				return fmt.Errorf("read events: %w", err)
			}
			took, err := emit(&ev)
			if err == nil && !took && n == 0 {
				err = errFirstRowRefused
			}
			if err != nil {
				// Cancelled, pgx gives up the connection instead of
				// reading (and discarding) the rest of the page.
				cancel()
				return err
			}
			if !took {
				s.HasMore = true
				break
			}
			n++
			last = Cursor{Timestamp: ev.EventTimestamp, EventID: ev.EventID}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	s.TotalExact = s.Total < int64(countCap)
	if s.HasMore {
		s.Next = &last
	}
	return s, nil
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
			if err := setStatementTimeout(ctx, tx, r.cfg.StatementTimeout); err != nil {
				return err
			}
			return fn(tx)
		})
}

// setStatementTimeout sets the statement timeout for the rest of tx.
func setStatementTimeout(ctx context.Context, tx pgx.Tx, d time.Duration) error {
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", ms); err != nil {
		return fmt.Errorf("set statement timeout: %w", err)
	}
	return nil
}

// check reports a filter naming a field that is not one.
func (f Filter) check() error {
	for name := range f.Equal {
		if !slices.Contains(filterColumns, name) {
			return fmt.Errorf("query: %s is not a filter", name)
		}
	}
	return nil
}

// where renders the filter as a WHERE clause with positional arguments.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	for _, col := range filterColumns {
		if v := f.Equal[col]; v != "" {
			args = append(args, v)
			conds = append(conds, fmt.Sprintf("%s = $%d", col, len(args)))
		}
	}
	if f.Detail != nil {
		// Both as parameters: the key is checked by the API, but no
		// part of a filter is ever spliced into the SQL.
		args = append(args, f.Detail.Key, f.Detail.Value)
		conds = append(conds, fmt.Sprintf("event_data->>$%d = $%d", len(args)-1, len(args)))
	}
	switch len(f.Namespaces) {
	case 0:
	case 1:
		// Equality, unlike = ANY, lets the namespace index give the
		// newest-first order: the common case of one team's credential.
		args = append(args, f.Namespaces[0])
		conds = append(conds, fmt.Sprintf("namespace = $%d", len(args)))
	default:
		args = append(args, f.Namespaces)
		conds = append(conds, fmt.Sprintf("namespace = ANY($%d)", len(args)))
	}
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

// scanEvent reads one row of selectColumns.
func scanEvent(row pgx.CollectableRow) (Event, error) {
	var e audit.Event
	dest := make([]any, len(selectFields))
	for i := range selectFields {
		f := &selectFields[i]
		switch f.Kind {
		case audit.KindText, audit.KindEnum:
			dest[i] = f.Str(&e)
		case audit.KindOptText:
			dest[i] = f.OptStr(&e)
		case audit.KindTimestamp, audit.KindDate:
			dest[i] = f.Time(&e)
		case audit.KindID:
			dest[i] = (*[16]byte)(f.UUID(&e))
		case audit.KindOptUUID:
			dest[i] = optUUID{f.OptUUID(&e)}
		case audit.KindOptCount:
			dest[i] = f.OptInt(&e)
		case audit.KindObject:
			dest[i] = (*[]byte)(f.Raw(&e))
		case audit.KindOptAddr:
			dest[i] = optAddr{f.Addr(&e)}
		case audit.KindFlag:
			dest[i] = f.Flag(&e)
		case audit.KindOptInt:
			dest[i] = f.OptInt32(&e)
		case audit.KindOptHash:
			dest[i] = f.Bytes(&e)
		case audit.KindOptSmallInt:
			dest[i] = f.OptSmallInt(&e)
		default:
			panic("query: " + f.Name + ": no scan rule for its kind")
		}
	}
	if err := row.Scan(dest...); err != nil {
		return Event{}, err
	}
	for i := range selectFields {
		// pgx returns timestamptz in the local time zone.
		if f := &selectFields[i]; f.Kind == audit.KindTimestamp {
			*f.Time(&e) = f.Time(&e).UTC()
		}
	}
	return Event(e), nil
}

// optAddr scans a nullable inet column into a netip.Addr field (the zero
// Addr for null). The writer stores single addresses only, so the prefix
// length is the address's own.
type optAddr struct{ dst *netip.Addr }

func (o optAddr) ScanNetipPrefix(v netip.Prefix) error {
	*o.dst = v.Addr()
	return nil
}

// optUUID scans a nullable uuid column into a *uuid.UUID field.
type optUUID struct{ dst **uuid.UUID }

func (o optUUID) ScanUUID(v pgtype.UUID) error {
	*o.dst = nil
	if v.Valid {
		id := uuid.UUID(v.Bytes)
		*o.dst = &id
	}
	return nil
}
