package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestEventResponseJSON: the single-event answer, appended by hand, is
// byte for byte what encoding/json (gin's c.JSON) writes, for both of
// createEvent's messages and timestamps with and without fractions.
func TestEventResponseJSON(t *testing.T) {
	for _, tt := range []struct {
		name string
		res  AuditEventResponse
	}{
		{"accepted, microseconds", AuditEventResponse{EventID: uuid.MustParse("0193b6a2-7c4e-7d2a-9f3b-1a2b3c4d5e6f"),
			EventTimestamp: time.Date(2025, 12, 13, 2, 1, 0, 123456000, time.UTC), Message: "audit event accepted"}},
		{"spooled, whole second", AuditEventResponse{EventID: uuid.MustParse("ffffffff-ffff-7fff-bfff-ffffffffffff"),
			EventTimestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Message: "audit event accepted into the local spool" + spooledNote}},
		{"leap second stored as the last microsecond", AuditEventResponse{EventID: uuid.Nil,
			EventTimestamp: time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC), Message: "audit event accepted"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.res)
			require.NoError(t, err)
			require.Equal(t, string(want), string(tt.res.appendJSON(nil)))
		})
	}
}
