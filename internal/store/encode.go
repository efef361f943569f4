package store

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/errclass"
)

// rowError is a row that pgx cannot encode for its column: the client
// refused it before PostgreSQL saw any of it, so it is this row's fault,
// not the database's (unencodable classes it Poison).
type rowError struct {
	Column string
	Err    error
}

func (e *rowError) Error() string {
	return fmt.Sprintf("row cannot be encoded for column %s: %v", e.Column, e.Err)
}

func (e *rowError) Unwrap() error { return e.Err }

// unencodable returns, classified as Poison, a *rowError for the first
// value of rows that pgx cannot encode in the binary format COPY uses, or
// nil.
//
// It runs only after a COPY failed. pgx encodes the rows while it streams
// them; when a value cannot be encoded it aborts the COPY (CopyFail) and
// PostgreSQL answers SQLSTATE 57014, query_canceled, which alone reads as an
// outage: the writer would retry the batch for ever. Encoding the rows again
// here, off the hot path, tells that case apart by its cause.
func unencodable(rows [][]any, columns []string, oids []uint32) error {
	// A Map caches encode plans without locking: one per call.
	m := pgtype.NewMap()
	var buf []byte
	for _, row := range rows {
		if len(row) != len(oids) {
			return nil
		}
		for i, v := range row {
			var err error
			if buf, err = m.Encode(oids[i], pgtype.BinaryFormatCode, v, buf[:0]); err != nil {
				return &errclass.Error{Class: errclass.Poison, Err: &rowError{Column: columns[i], Err: err}}
			}
		}
	}
	return nil
}

// eventOIDs are the types of eventColumns, by the field table's kinds
// (TestCopyTypesMatchSchema compares them with the migrated columns).
var eventOIDs = func() []uint32 {
	oids := make([]uint32, len(copyFields))
	for i, f := range copyFields {
		switch f.Kind {
		case audit.KindText, audit.KindEnum, audit.KindOptText:
			oids[i] = pgtype.VarcharOID
		case audit.KindTimestamp:
			oids[i] = pgtype.TimestamptzOID
		case audit.KindID, audit.KindOptUUID:
			oids[i] = pgtype.UUIDOID
		case audit.KindOptCount:
			oids[i] = pgtype.Int8OID
		case audit.KindObject:
			oids[i] = pgtype.JSONBOID
		case audit.KindOptHash:
			oids[i] = pgtype.ByteaOID
		case audit.KindOptSmallInt:
			oids[i] = pgtype.Int2OID
		case audit.KindOptInt:
			oids[i] = pgtype.Int4OID
		case audit.KindDate:
			oids[i] = pgtype.DateOID
		case audit.KindOptAddr:
			oids[i] = pgtype.InetOID
		case audit.KindFlag:
			oids[i] = pgtype.BoolOID
		default:
			panic("store: " + f.Name + ": no column type for its kind")
		}
	}
	return oids
}()

// notificationStageOIDs are the types of notificationColumns in
// notification_audit_stage.
var notificationStageOIDs = []uint32{
	pgtype.Int8OID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID,
	pgtype.TimestamptzOID, pgtype.TextOID, pgtype.TextOID, pgtype.Int2OID, pgtype.TimestamptzOID, pgtype.TimestamptzOID,
	pgtype.TextOID,
}
