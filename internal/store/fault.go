package store

// FaultUnencodable is the event_type that a binary built with the
// faultinject tag (fault_on.go) turns into a row pgx cannot encode: a value
// out of range of its bigint column, the kind of row that validation
// missed and the client refuses before PostgreSQL sees it. Process tests
// build the writer with the tag to prove such a row is isolated and
// dead-lettered; without the tag (every production build) nothing happens.
const FaultUnencodable = "auditstream.fault.unencodable"
