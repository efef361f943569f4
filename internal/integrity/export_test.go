package integrity_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
)

var exportTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// exportOf writes events (in (correlation_id, chain_seq) order) as an
// export of format, signed by signer, checked with keys.
func exportOf(t *testing.T, format string, signer *integrity.Signer, keys *integrity.Keys, events []audit.Event, incomplete string) []byte {
	t.Helper()
	var buf bytes.Buffer
	x := integrity.NewExportWriter(&buf, signer, keys, integrity.ExportInfo{Format: format, Time: exportTime, ExportedBy: "auditor",
		Filters: integrity.ExportFilters{EventCategory: "gateway"}})
	for i := range events {
		require.NoError(t, x.Event(&events[i]))
	}
	require.NoError(t, x.Close(incomplete, exportTime.Add(time.Second)))
	return buf.Bytes()
}

// exportFixture is two chains and an event stored without a chain.
func exportFixture(t *testing.T) (*integrity.Keys, *integrity.Signer, *integrity.PublicKeys, []audit.Event) {
	t.Helper()
	keys, _ := newKeys(t, "k1")
	signer, err := integrity.ParseSigner([]byte(opensslPrivate))
	require.NoError(t, err)
	pub, err := integrity.ParsePublicKeys(signer.PublicKeyPEM())
	require.NoError(t, err)
	events := append(chain(t, keys, "c-1", 3), chain(t, keys, "c-2", 2)...)
	unchained := testEvent("c-3", 9)
	return keys, signer, pub, append(events, unchained)
}

func verifyExport(t *testing.T, data []byte, pub *integrity.PublicKeys, keys *integrity.Keys) *integrity.ExportReport {
	t.Helper()
	r, err := integrity.VerifyExport(bytes.NewReader(data), pub, keys, 10)
	require.NoError(t, err)
	return r
}

func problemKinds(r *integrity.ExportReport) []string {
	var kinds []string
	for _, p := range r.Problems {
		kinds = append(kinds, p.Kind)
	}
	return kinds
}

func TestExportVerifies(t *testing.T) {
	keys, signer, pub, events := exportFixture(t)
	for _, format := range []string{integrity.ExportNDJSON, integrity.ExportJSON} {
		t.Run(format, func(t *testing.T) {
			data := exportOf(t, format, signer, keys, events, "")
			for _, k := range []*integrity.Keys{nil, keys} {
				r := verifyExport(t, data, pub, k)
				require.True(t, r.Valid(), "%+v %+v", r.Problems, r.Breaks)
				require.Equal(t, format, r.Format)
				require.Equal(t, k != nil, r.Keyed)
				require.Equal(t, int64(6), r.Events)
				require.Equal(t, int64(3), r.Chains)
				require.Equal(t, int64(1), r.Unchained)
				require.Equal(t, "auditor", r.Metadata.ExportedBy)
				require.True(t, r.Metadata.Complete)
				require.Equal(t, integrity.HashChainVerification{TotalEventsVerified: 5, ValidChainEvents: 5,
					ChainIntegrityPercentage: 100, UnchainedEvents: 1, VerificationTimestamp: exportTime.Add(time.Second),
					TamperedEventIDs: []uuid.UUID{}}, *r.Server)
			}
		})
	}

	// ndjson: one event a line, the metadata last.
	data := exportOf(t, integrity.ExportNDJSON, signer, keys, events, "")
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	require.Len(t, lines, 7)
	got, err := audit.ParseStoredEvent(lines[0])
	require.NoError(t, err)
	require.Equal(t, events[0], got, "every stored field, chain fields included")
	require.True(t, bytes.HasPrefix(lines[6], []byte(`{"format":"auditstream.export"`)))

	// json: the seed system's shape, one JSON document.
	var doc struct {
		ExportMetadata map[string]any   `json:"export_metadata"`
		Events         []map[string]any `json:"events"`
		HCV            map[string]any   `json:"hash_chain_verification"`
	}
	require.NoError(t, json.Unmarshal(exportOf(t, integrity.ExportJSON, signer, keys, events, ""), &doc))
	require.Len(t, doc.Events, 6)
	require.Equal(t, "c-1", doc.Events[0]["correlation_id"])
	require.NotEmpty(t, doc.Events[0]["event_hash"])
	for _, member := range []string{"signature", "signature_algorithm", "exported_by", "total_events", "export_timestamp", "export_format", "query_filters"} {
		require.Contains(t, doc.ExportMetadata, member)
	}
	require.Equal(t, "Ed25519", doc.ExportMetadata["signature_algorithm"])
	require.EqualValues(t, 6, doc.ExportMetadata["total_events"])
	require.EqualValues(t, 5, doc.HCV["valid_chain_events"])

	// An empty export is signed too.
	for _, format := range []string{integrity.ExportNDJSON, integrity.ExportJSON} {
		r := verifyExport(t, exportOf(t, format, signer, keys, nil, ""), pub, keys)
		require.True(t, r.Valid(), "%s: %+v", format, r.Problems)
		require.Zero(t, r.Events)
	}
}

// TestExportTampering: a cut file, any changed byte, another signing key
// and an export the service ended early never verify, and are named.
func TestExportTampering(t *testing.T) {
	keys, signer, pub, events := exportFixture(t)
	for _, format := range []string{integrity.ExportNDJSON, integrity.ExportJSON} {
		t.Run(format, func(t *testing.T) {
			data := exportOf(t, format, signer, keys, events, "")

			last := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
			for _, cut := range []int{len(data) - 2, last, last - 1, len(data) / 2, 1, 0} {
				r := verifyExport(t, data[:cut], pub, nil)
				require.False(t, r.Valid(), "cut at %d", cut)
				if cut <= last {
					require.Contains(t, problemKinds(r), integrity.ExportTruncated, "cut at %d: %+v", cut, r.Problems)
				}
			}

			for i := range data {
				flipped := bytes.Clone(data)
				flipped[i] ^= 0x01
				r := verifyExport(t, flipped, pub, nil)
				require.False(t, r.Valid(), "byte %d (%q) flipped", i, data[i])
			}

			other, err := integrity.ParseSigner(func() []byte { p, _ := integrity.GenerateSigningKey(); return p }())
			require.NoError(t, err)
			r := verifyExport(t, exportOf(t, format, other, keys, events, ""), pub, nil)
			require.Equal(t, []string{integrity.ExportKey}, problemKinds(r))
			require.Contains(t, r.Problems[0].Message, integrity.KeyFingerprint(other.PublicKey()))

			r = verifyExport(t, exportOf(t, format, signer, keys, events[:2], "EXPORT_MAX_DURATION (15m0s) reached"), pub, nil)
			require.Equal(t, []string{integrity.ExportIncomplete}, problemKinds(r))
			require.Contains(t, r.Problems[0].Message, "EXPORT_MAX_DURATION")
			require.Equal(t, int64(2), r.Events)
		})
	}
}

// TestExportChains: the exporter's signed check and the offline check
// both see an event altered in the database; a filtered export's gaps are
// no break.
func TestExportChains(t *testing.T) {
	keys, signer, pub, events := exportFixture(t)
	events[1].EventData = json.RawMessage(`{"i":1,"labels":{"pod":"evil"}}`)
	data := exportOf(t, integrity.ExportNDJSON, signer, keys, events, "")

	r := verifyExport(t, data, pub, keys)
	require.False(t, r.Valid())
	require.Equal(t, []string{integrity.ExportTampered}, problemKinds(r), "the file is what the service signed, and it says what it found")
	require.Contains(t, r.Problems[0].Message, "c-1 chain_seq 2 (altered)")
	require.Len(t, r.Breaks, 1)
	require.Equal(t, integrity.ExportBreak{CorrelationID: "c-1", EventID: events[1].EventID, ChainSeq: 2, Kind: integrity.BreakAltered,
		Message: r.Breaks[0].Message}, r.Breaks[0])
	require.Equal(t, int64(1), r.Server.BrokenChainEvents)
	require.Equal(t, []uuid.UUID{events[1].EventID}, r.Server.TamperedEventIDs)
	require.Equal(t, integrity.BreakAltered, r.Server.Breaks[0].Kind)
	require.InDelta(t, 80.0, r.Server.ChainIntegrityPercentage, 0.001)

	// Without the keys only the links are checked: the altered field
	// kept its hash, so the links hold, and the report says it was not
	// keyed.
	r = verifyExport(t, data, pub, nil)
	require.Empty(t, r.Breaks)
	require.False(t, r.Keyed)
	require.Equal(t, []string{integrity.ExportTampered}, problemKinds(r), "the service's signed check still tells")

	filtered := chain(t, keys, "c-9", 5)
	r = verifyExport(t, exportOf(t, integrity.ExportJSON, signer, keys, []audit.Event{filtered[0], filtered[2], filtered[4]}, ""), pub, keys)
	require.True(t, r.Valid(), "%+v", r.Breaks)
	require.Equal(t, int64(2), r.Skipped)

	// Consecutive events must link, also without the keys: an event's
	// hash replaced in the database shows at the event after it.
	filtered[2].EventHash = bytes.Repeat([]byte{1}, 32)
	r = verifyExport(t, exportOf(t, integrity.ExportNDJSON, signer, keys, filtered, ""), pub, nil)
	require.Equal(t, integrity.BreakLink, r.Breaks[0].Kind, "%+v", r.Breaks)
	require.Equal(t, int64(4), r.Breaks[0].ChainSeq)
}

func TestExportBreaksAreBounded(t *testing.T) {
	keys, signer, pub, _ := exportFixture(t)
	events := chain(t, keys, "c-1", 150)
	for i := range events {
		events[i].EventAction = fmt.Sprint("forged-", i)
	}
	r := verifyExport(t, exportOf(t, integrity.ExportNDJSON, signer, keys, events, ""), pub, keys)
	require.Len(t, r.Breaks, 10)
	require.Equal(t, int64(140), r.MoreBreaks)
	require.Equal(t, []string{integrity.ExportTampered}, problemKinds(r))
	require.Len(t, r.Server.Breaks, 100)
	require.Len(t, r.Server.TamperedEventIDs, 150)
}
