package store

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
)

// column is one row of information_schema.columns.
type column struct {
	dataType  string
	maxLength *int32
	nullable  string
	generated string
}

// columnOf is what the migrations must declare for a field of each kind.
var columnOf = map[audit.Kind]column{
	audit.KindText:        {dataType: "character varying", nullable: "NO"},
	audit.KindOptText:     {dataType: "character varying", nullable: "YES"},
	audit.KindEnum:        {dataType: "character varying", nullable: "NO"},
	audit.KindTimestamp:   {dataType: "timestamp with time zone", nullable: "NO"},
	audit.KindDate:        {dataType: "date", nullable: "YES"}, // generated columns cannot be NOT NULL
	audit.KindID:          {dataType: "uuid", nullable: "NO"},
	audit.KindOptUUID:     {dataType: "uuid", nullable: "YES"},
	audit.KindOptCount:    {dataType: "bigint", nullable: "YES"},
	audit.KindObject:      {dataType: "jsonb", nullable: "NO"},
	audit.KindOptHash:     {dataType: "bytea", nullable: "YES"},
	audit.KindOptSmallInt: {dataType: "smallint", nullable: "YES"},
	audit.KindOptAddr:     {dataType: "inet", nullable: "YES"},
	audit.KindFlag:        {dataType: "boolean", nullable: "NO"},
	audit.KindOptInt:      {dataType: "integer", nullable: "YES"},
}

// TestFieldTableMatchesSchema checks audit's field table against the
// migrated audit_events: one column per field, of the type, size and
// nullability its kind needs, generated exactly when PostgreSQL computes
// the field, and no column the table does not know.
func TestFieldTableMatchesSchema(t *testing.T) {
	s := openStore(t, pg.URL())
	rows, err := s.Pool().Query(t.Context(), `SELECT column_name, data_type, character_maximum_length, is_nullable, is_generated,
		column_default IS NOT NULL
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'audit_events'`)
	require.NoError(t, err)
	got := map[string]column{}
	fields := map[string]audit.Kind{}
	for _, f := range audit.EventFields() {
		fields[f.Name] = f.Kind
	}
	// By the writer: neither generated nor defaulted, or a field whose
	// column has a default all the same (a flag's, for rows stored before
	// it existed).
	var filled []string
	for rows.Next() {
		var name string
		var c column
		var defaulted bool
		require.NoError(t, rows.Scan(&name, &c.dataType, &c.maxLength, &c.nullable, &c.generated, &defaulted))
		got[name] = c
		kind, isField := fields[name]
		if c.generated == "NEVER" && (!defaulted || isField) {
			filled = append(filled, name)
		}
		if defaulted && isField {
			require.Equal(t, audit.KindFlag, kind, "%s: only a flag's column has a default (false, its kind's)", name)
		}
	}
	require.NoError(t, rows.Err())

	// Filled by PostgreSQL and read by nobody yet, so not a field.
	want := map[string]column{"ingested_at": {dataType: "timestamp with time zone", nullable: "NO", generated: "NEVER"}}
	for _, f := range audit.EventFields() {
		c, ok := columnOf[f.Kind]
		require.True(t, ok, "%s: no column type for kind %d", f.Name, f.Kind)
		if c.dataType == "character varying" {
			n := int32(f.MaxLen)
			c.maxLength = &n
		}
		c.generated = "NEVER"
		if f.Source == audit.Database {
			c.generated = "ALWAYS"
		}
		want[f.Name] = c
	}
	require.Equal(t, want, got)
	require.ElementsMatch(t, filled, EventColumns(), "COPY fills every column PostgreSQL does not")
}
