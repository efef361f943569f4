package audit

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestContentDigestIsStable pins the documented definition: stored digests
// must keep matching the records that produced them.
func TestContentDigestIsStable(t *testing.T) {
	in := `{ "event_data": {"b": [1, 2.50], "a": "x"}, "correlation_id": "c-1", "version": "1.0",
		"event_type": "gateway.signal.received", "event_timestamp": "2025-12-13T03:00:00.120000+01:00",
		"event_category": "gateway", "event_action": "received", "event_outcome": "success",
		"actor_id": "svc", "namespace": null, "duration_ms": 15,
		"event_id": "0192f5a4-8f2a-7c3e-9b1d-4e5f6a7b8c9d", "unknown": "ignored" }`
	ev, err := DefaultRules().ParseEvent([]byte(in), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	canonical := `{"event_id":"0192f5a4-8f2a-7c3e-9b1d-4e5f6a7b8c9d","version":"1.0","event_type":"gateway.signal.received",` +
		`"event_timestamp":"2025-12-13T02:00:00.12Z","event_category":"gateway","event_action":"received",` +
		`"event_outcome":"success","correlation_id":"c-1","actor_id":"svc","duration_ms":15,` +
		`"event_data":{"b":[1,2.50],"a":"x"}}`
	require.Equal(t, canonical, string(ev.AppendJSON(nil)))
	require.Equal(t, sha256.Sum256([]byte(canonical)), ev.ContentDigest())

	changed := ev
	changed.EventOutcome = "failure"
	require.NotEqual(t, ev.ContentDigest(), changed.ContentDigest(), "any field is content")
	stored := ev
	stored.EventDate = time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)
	require.Equal(t, ev.ContentDigest(), stored.ContentDigest(), "what the database computes is not")
}
