package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class is what a writer does with a database error (SPEC section 5).
type Class int

const (
	// None is the class of a nil error.
	None Class = iota
	// Outage: the database cannot be used right now (unreachable, shutting
	// down, overloaded, timed out, a transaction lost a serialization race).
	// Nothing is wrong with the records: retry the same batch with backoff
	// and stop fetching; never dead-letter.
	Outage
	// Failed: the database rejected the records for a reason that may clear
	// without changing them (no partition for that time yet, a constraint
	// or table that a later migration changes, missing privileges).
	// Dead-letter them for replay.
	Failed
	// Poison: this row can never be stored as it is (a data exception, a
	// missing required value, a clash with a different stored row).
	// Isolate it (split the batch), dead-letter it, store the rest.
	Poison
)

// String returns the name used in logs, metrics and the dlq-error-class
// header.
func (c Class) String() string {
	switch c {
	case None:
		return "none"
	case Outage:
		return "outage"
	case Failed:
		return "failed"
	case Poison:
		return "poison"
	default:
		return "unknown"
	}
}

// sqlstateClass maps full SQLSTATE codes that differ from their class, and
// classClass maps the two-character SQLSTATE classes. Codes are from
// https://www.postgresql.org/docs/current/errcodes-appendix.html.
var (
	sqlstateClass = map[string]Class{
		// Class 23, integrity constraint violation, is split by cause.
		"23502": Poison, // not_null_violation: a required value is missing from this row.
		// unique_violation: de-duplication uses ON CONFLICT on event_id /
		// notification_id, so a 23505 that still arrives is a clash on
		// another key (a direct producer's notification id that another
		// notification holds): the row never fits as it is.
		"23505": Poison,
		"23P01": Poison, // exclusion_violation: like unique_violation.
		// check_violation is both "no partition of relation found for row"
		// (the partition is created later) and a CHECK constraint that a
		// migration may relax: both can clear.
		"23514": Failed,
		"23503": Failed, // foreign_key_violation: the referenced row may arrive later.

		// Class 40, transaction rollback: retry the transaction...
		// ...except a deferred constraint that failed at commit, which is
		// an integrity violation like class 23.
		"40002": Failed,

		// Class 54, program limit exceeded, comes from one row's size or
		// shape (index row too large, too many columns): poison.

		// Class 55, object not in prerequisite state: 55P03 lock_not_available
		// (lock_timeout, e.g. creating a partition behind a long query),
		// 55006 object_in_use, 55P04 unsafe_new_enum_value_usage are
		// transient; the class default below covers them.
		"55000": Failed, // object_not_in_prerequisite_state: needs an operator.

		// Class 57, operator intervention: shutdown, crash, cannot connect
		// now, statement/idle timeouts (57014 query_canceled) are outages;
		// the class default covers them.
	}

	classClass = map[string]Class{
		"08": Outage, // connection exception
		"53": Outage, // insufficient resources: disk full, out of memory, too many connections
		"57": Outage, // operator intervention: admin/crash shutdown, cannot connect now, query canceled
		"40": Outage, // transaction rollback: serialization failure, deadlock, statement completion unknown
		"25": Outage, // invalid transaction state: read-only transaction on a demoted primary, idle timeouts
		"55": Outage, // object not in prerequisite state: lock timeout, object in use
		"58": Outage, // system error: I/O error
		"F0": Outage, // configuration file error
		"72": Outage, // snapshot too old
		"28": Outage, // invalid authorization: cannot connect until credentials are fixed
		"3D": Outage, // invalid catalog name: the database does not exist (yet)
		"26": Outage, // invalid SQL statement name: a prepared statement lost with its session

		"22": Poison, // data exception: bad value, too long, out of range, bad encoding
		"54": Poison, // program limit exceeded: index row or value too large

		"23": Failed, // integrity constraint violation not listed above
		// Class 42, syntax error or access rule violation: the schema is not
		// (yet) migrated, privileges were revoked, or our SQL is wrong. Every
		// record would fail alike, so no record can be judged until an
		// operator acts: waiting keeps them in Kafka instead of emptying the
		// whole stream into the DLQ.
		"42": Outage,
		"0A": Failed, // feature not supported
		"XX": Failed, // internal error: needs an operator; keeps the records for replay
	}
)

// Classify decides what a writer does with err, from the SQLSTATE of a
// PostgreSQL error (never from its message) or, for errors that never
// reached the server, from their type.
//
// Errors while connecting are outages whatever their SQLSTATE: until the
// connection works no record can be judged. Any other error without a
// SQLSTATE (network, EOF, closed connection, context cancellation or
// deadline) is an outage too: retrying loses nothing, whereas dead-lettering
// a healthy batch on an unrecognised client error would. A SQLSTATE the
// tables do not name is Failed: it is kept for replay.
func Classify(err error) Class {
	if err == nil {
		return None
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return Outage
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.Timeout(err) {
		return Outage
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifySQLState(pgErr.Code)
	}
	// No SQLSTATE: net.Error, io.EOF, pgconn.ErrConnClosed, a broken pool...
	return Outage
}

func classifySQLState(code string) Class {
	if c, ok := sqlstateClass[code]; ok {
		return c
	}
	if len(code) == 5 {
		if c, ok := classClass[code[:2]]; ok {
			return c
		}
	}
	return Failed
}
