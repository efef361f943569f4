package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
)

// Outage is errclass.Outage under its old name.
//
// Deprecated: use errclass.Outage. It stays only until internal/query's
// tests, which compare query errors against it, are moved over.
const Outage = errclass.Outage

// sqlstateClass maps full SQLSTATE codes that differ from their class, and
// classClass maps the two-character SQLSTATE classes. Codes are from
// https://www.postgresql.org/docs/current/errcodes-appendix.html.
var (
	sqlstateClass = map[string]errclass.Class{
		// Class 23, integrity constraint violation, is split by cause.
		"23502": errclass.Poison, // not_null_violation: a required value is missing from this row.
		// unique_violation: de-duplication uses ON CONFLICT on event_id /
		// notification_id, so a 23505 that still arrives is a clash on
		// another key (a direct producer's notification id that another
		// notification holds): the row never fits as it is.
		"23505": errclass.Poison,
		"23P01": errclass.Poison, // exclusion_violation: like unique_violation.
		// check_violation is both "no partition of relation found for row"
		// (the partition is created later) and a CHECK constraint that a
		// migration may relax: both can clear.
		"23514": errclass.Failed,
		"23503": errclass.Failed, // foreign_key_violation: the referenced row may arrive later.

		// Class 40, transaction rollback: retry the transaction...
		// ...except a deferred constraint that failed at commit, which is
		// an integrity violation like class 23.
		"40002": errclass.Failed,

		// Class 54, program limit exceeded, comes from one row's size or
		// shape (index row too large, too many columns): poison.

		// Class 55, object not in prerequisite state: 55P03 lock_not_available
		// (lock_timeout, e.g. creating a partition behind a long query),
		// 55006 object_in_use, 55P04 unsafe_new_enum_value_usage are
		// transient; the class default below covers them.
		"55000": errclass.Failed, // object_not_in_prerequisite_state: needs an operator.

		// Class 57, operator intervention: shutdown, crash, cannot connect
		// now, statement/idle timeouts (57014 query_canceled) are outages;
		// the class default covers them.
	}

	classClass = map[string]errclass.Class{
		"08": errclass.Outage, // connection exception
		"53": errclass.Outage, // insufficient resources: disk full, out of memory, too many connections
		"57": errclass.Outage, // operator intervention: admin/crash shutdown, cannot connect now, query canceled
		"40": errclass.Outage, // transaction rollback: serialization failure, deadlock, statement completion unknown
		"25": errclass.Outage, // invalid transaction state: read-only transaction on a demoted primary, idle timeouts
		"55": errclass.Outage, // object not in prerequisite state: lock timeout, object in use
		"58": errclass.Outage, // system error: I/O error
		"F0": errclass.Outage, // configuration file error
		"72": errclass.Outage, // snapshot too old
		"28": errclass.Outage, // invalid authorization: cannot connect until credentials are fixed
		"3D": errclass.Outage, // invalid catalog name: the database does not exist (yet)
		"26": errclass.Outage, // invalid SQL statement name: a prepared statement lost with its session

		"22": errclass.Poison, // data exception: bad value, too long, out of range, bad encoding
		"54": errclass.Poison, // program limit exceeded: index row or value too large

		"23": errclass.Failed, // integrity constraint violation not listed above
		// Class 42, syntax error or access rule violation: the schema is not
		// (yet) migrated, privileges were revoked, or our SQL is wrong. Every
		// record would fail alike, so no record can be judged until an
		// operator acts: waiting keeps them in Kafka instead of emptying the
		// whole stream into the DLQ.
		"42": errclass.Outage,
		"0A": errclass.Failed, // feature not supported
		"XX": errclass.Failed, // internal error: needs an operator; keeps the records for replay
	}
)

// Classify decides the class of err, from the SQLSTATE of a PostgreSQL
// error (never from its message) or, for errors that never reached the
// server, from their type; an error that already carries its class
// (*errclass.Error) keeps it. Write classifies its errors with it; other
// callers (the read path) use it to tell a retryable error.
//
// A row that pgx could not encode (found after a failed COPY, encode.go)
// comes classified as Poison: the client refused it before PostgreSQL saw
// it, so splitting the batch isolates it and the rest is stored. Its class
// wins over the SQLSTATE 57014 (query_canceled, an outage code) of the COPY
// it aborted.
//
// Errors while connecting are outages whatever their SQLSTATE: until the
// connection works no record can be judged. Any other error without a
// SQLSTATE (network, EOF, closed connection, context cancellation or
// deadline) is an outage too: retrying loses nothing, whereas dead-lettering
// a healthy batch on an unrecognised client error would. A SQLSTATE the
// tables do not name is Failed: it is kept for replay.
func Classify(err error) errclass.Class {
	if err == nil {
		return errclass.None
	}
	// Decided where it happened (an event the hash chain cannot encode, a
	// row pgx cannot).
	var classified *errclass.Error
	if errors.As(err, &classified) {
		return classified.Class
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return errclass.Outage
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.Timeout(err) {
		return errclass.Outage
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifySQLState(pgErr.Code)
	}
	// No SQLSTATE: net.Error, io.EOF, pgconn.ErrConnClosed, a broken pool...
	return errclass.Outage
}

func classifySQLState(code string) errclass.Class {
	if c, ok := sqlstateClass[code]; ok {
		return c
	}
	if len(code) == 5 {
		if c, ok := classClass[code[:2]]; ok {
			return c
		}
	}
	return errclass.Failed
}

// maxChainRaces bounds the immediate rewrites of a batch that lost a
// chain head race: the locked rewrite loses only to a chain started
// concurrently, once per chain.
const maxChainRaces = 3

// Write stores events and notifications in one transaction, skipping every
// one whose event_id / notification_id is already stored (see writeOnce).
// Every error it returns is an *errclass.Error: the class is decided here,
// once, and the writer acts on it.
//
// A partition dropped behind the store's back (retention) makes every row
// of its month fail, as no partition found for the row, for as long as the
// month stays cached as having one: on that error the cache is forgotten
// and the write tried once more, which creates the partition again.
//
// A batch that lost a race for a chain head to another writer (both held
// its partition during a rebalance) is written again at once, its heads
// locked first: it then waits for the other writer, if need be, and links
// to the head it left. A new chain can be lost once more (there was no row
// to lock); after maxChainRaces in a row it is an outage, which the writer
// waits out.
func (s *Store) Write(ctx context.Context, events []audit.Event, notifications []audit.Notification) (WriteResult, error) {
	res, err := s.writeOnce(ctx, events, notifications, false)
	if err != nil && noPartitionForRow(err) {
		s.forgetPartitions()
		res, err = s.writeOnce(ctx, events, notifications, false)
	}
	races := 0
	for ; races < maxChainRaces && lostChainRace(err); races++ {
		res, err = s.writeOnce(ctx, events, notifications, true)
	}
	res.ChainRaces = races
	if err != nil {
		return WriteResult{}, &errclass.Error{Class: Classify(err), Err: err}
	}
	return res, nil
}

// lostChainRace reports a batch that another writer beat to a chain head:
// it moved the head first (errChainRace), or the two locked heads in
// different orders and PostgreSQL chose this one to abort (a deadlock,
// SQLSTATE 40P01, possible only while one links without locking).
func lostChainRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.Is(err, errChainRace) || errors.As(err, &pgErr) && pgErr.Code == "40P01"
}

// noPartitionForRow reports PostgreSQL's "no partition of relation found for
// row". It shares SQLSTATE 23514 with a CHECK constraint violation, which
// names its constraint; the missing partition names none. Only that error
// is worth another try after forgetting the partitions: any other one, and
// a batch's halves that the writer tries while isolating a culprit, would
// only repeat it.
func noPartitionForRow(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.ConstraintName == ""
}
