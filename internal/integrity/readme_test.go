package integrity_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
)

// readmeEvent is the worked example of the README's "Integrity" section,
// as the writer holds it before linking: the client's event_data as sent.
func readmeEvent() audit.Event {
	return audit.Event{
		EventID: uuid.MustParse("0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b"), Version: "1.0", EventType: "gateway.signal.received",
		EventTimestamp: time.Date(2025, 12, 13, 2, 0, 0, 0, time.UTC), EventCategory: "gateway", EventAction: "received",
		EventOutcome: "success", CorrelationID: "rr-2025-001", Namespace: ptr("production"), Severity: ptr("critical"),
		EventData:   json.RawMessage(`{"value":1.50,"signal_name":"HighCPUUsage"}`),
		SubmittedBy: ptr("svc-gateway"),
	}
}

// readmeBlock returns the fenced block that follows the marker comment
// <!-- name --> in the README.
func readmeBlock(t *testing.T, readme, name string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(name) + " -->\\s*```[a-z]*\\n(.*?)```")
	m := re.FindStringSubmatch(readme)
	require.NotNil(t, m, "README has no block after <!-- %s -->", name)
	return m[1]
}

// TestReadmeExample: the README's worked example (key, event, canonical
// bytes, event_hash) is what this package computes, so the documentation
// of the form cannot drift from the code.
func TestReadmeExample(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(data)

	ring, err := keyring.Parse([]byte(readmeBlock(t, readme, "integrity-example-key")), "")
	require.NoError(t, err)
	keys := integrity.NewKeys(ring)

	e := readmeEvent()
	head, err := keys.Linker().Link(&e, integrity.Head{})
	require.NoError(t, err)

	// The event as reads return it, event_data as jsonb gives it back.
	var want, got any
	require.NoError(t, json.Unmarshal([]byte(readmeBlock(t, readme, "integrity-example-event")), &want))
	stored := e
	stored.EventDate = time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)
	stored.EventData = json.RawMessage(`{"value": 1.50, "signal_name": "HighCPUUsage"}`)
	require.NoError(t, json.Unmarshal(stored.AppendStoredJSON(nil), &got))
	require.Equal(t, want, got, "the README's event is the example's")

	canonical, err := integrity.AppendCanonical(nil, &e)
	require.NoError(t, err)
	hexBlock := strings.Join(strings.Fields(readmeBlock(t, readme, "integrity-example-canonical")), "")
	require.Equal(t, hex.EncodeToString(canonical), hexBlock, "canonical bytes:\n%s", dump(canonical))
	fromStore, err := integrity.AppendCanonical(nil, &stored)
	require.NoError(t, err)
	require.Equal(t, canonical, fromStore, "the same bytes from what the database returns")

	require.Equal(t, hex.EncodeToString(head.Hash), strings.TrimSpace(readmeBlock(t, readme, "integrity-example-hash")))
}

// dump writes b in the README's layout: 32 bytes a line.
func dump(b []byte) string {
	var out bytes.Buffer
	for i := 0; i < len(b); i += 32 {
		out.WriteString(hex.EncodeToString(b[i:min(i+32, len(b))]))
		out.WriteByte('\n')
	}
	return out.String()
}
