// Package errclass is the one vocabulary of SPEC 5's error classes. The
// store decides the class of a database error where it happens and returns
// it on the error (an *Error, found with errors.As, as Prometheus's
// remote-write RecoverableError is); the writer acts on the class; the
// dlq-error-class header records it under the same names.
//
// It is a package of its own, on the standard library alone, because the
// two ends that need it must not import each other: the store would pull
// Kafka into everything that reads the database, and the dead-letter
// envelope (with the replayer built on it) would pull in PostgreSQL.
package errclass

import "errors"

// Class says what to do with records an error refused. The values are the
// names used in logs, metrics and the dlq-error-class header.
type Class string

const (
	// None is the class of no error.
	None Class = ""
	// Outage: the database cannot be used right now (unreachable, shutting
	// down, overloaded, timed out, a transaction lost a serialization race).
	// Nothing is wrong with the records: retry the same batch with backoff
	// and stop fetching; never dead-letter.
	Outage Class = "outage"
	// Failed: the database rejected the records for a reason that may clear
	// without changing them (no partition for that time yet, a constraint
	// or table that a later migration changes). Dead-letter them for replay.
	Failed Class = "failed"
	// Poison: this record can never be stored as it is (invalid JSON or
	// fields, a data exception, a clash with a different stored row).
	// Isolate it, dead-letter it, store the rest.
	Poison Class = "poison"
	// Conflict: the record reuses an event_id that is stored (or earlier in
	// its batch) with different content. The stored row is never replaced
	// and a replay can only repeat the clash: dead-letter it for a person
	// to decide (the replayer parks it at once).
	Conflict Class = "conflict"
)

// String returns the name of the class, "none" for None.
func (c Class) String() string {
	if c == None {
		return "none"
	}
	return string(c)
}

// Error is an error whose class was decided where it happened.
type Error struct {
	Class Class
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap keeps the cause reachable (errors.Is, errors.As, its SQLSTATE).
func (e *Error) Unwrap() error { return e.Err }

// Of returns the class err carries: None for nil, and Outage for an error
// that nobody classified, because retrying such an error loses nothing
// while dead-lettering a healthy batch on it would.
func Of(err error) Class {
	if err == nil {
		return None
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Outage
}
