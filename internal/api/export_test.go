package api_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

func (f *integrityFixture) export(t *testing.T, params url.Values, header ...string) response {
	t.Helper()
	return f.do(http.MethodGet, "/api/v1/audit/export?"+params.Encode(), "", nil, header...)
}

func (f *integrityFixture) verifyExport(t *testing.T, data []byte) *integrity.ExportReport {
	t.Helper()
	r, err := integrity.VerifyExport(bytes.NewReader(data), f.exportKeys, f.keys, 10)
	require.NoError(t, err)
	return r
}

// TestExport: both formats hold every stored field of the chain's events,
// in chain order, signed over every byte, with the exporter's check of the
// chain; the principal is recorded, the filters applied.
func TestExport(t *testing.T) {
	f := newIntegrityFixture(t)
	corr, events := f.chain(t)
	f.chain(t) // another chain, left out by the correlation_id filter

	for _, format := range []string{"", integrity.ExportNDJSON, integrity.ExportJSON} {
		t.Run("format="+format, func(t *testing.T) {
			params := url.Values{"correlation_id": {corr}}
			if format != "" {
				params.Set("format", format)
			}
			res := f.export(t, params)
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			want := map[string]string{"": "application/x-ndjson", "ndjson": "application/x-ndjson", "json": "application/json; charset=utf-8"}[format]
			require.Equal(t, want, res.header.Get("Content-Type"))
			require.True(t, strings.HasPrefix(res.header.Get("Content-Disposition"), `attachment; filename="auditstream-export-`))

			r := f.verifyExport(t, res.body)
			require.True(t, r.Valid(), "%+v %+v", r.Problems, r.Breaks)
			require.True(t, r.Keyed)
			require.Equal(t, int64(len(events)), r.Events)
			require.Equal(t, int64(1), r.Chains)
			require.Equal(t, "fixture", r.Metadata.ExportedBy)
			require.Equal(t, corr, r.Metadata.QueryFilters.CorrelationID)
			require.Equal(t, int64(5), r.Server.ValidChainEvents)
		})
	}

	// The events as stored, chain fields included, in chain_seq order.
	res := f.export(t, url.Values{"correlation_id": {corr}})
	lines := bytes.Split(bytes.TrimSuffix(res.body, []byte("\n")), []byte("\n"))
	require.Len(t, lines, len(events)+1)
	for i, line := range lines[:len(events)] {
		e, err := audit.ParseStoredEvent(line)
		require.NoError(t, err)
		require.Equal(t, events[i].EventID, e.EventID)
		require.Equal(t, int64(i+1), *e.ChainSeq)
		require.NotEmpty(t, e.EventHash)
		require.Equal(t, "svc-payments", *e.SubmittedBy)
	}

	// A time range spanning both chains exports both, chain after chain.
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	res = f.export(t, url.Values{"start_time": {since}, "namespace": {"payments"}, "event_category": {"gateway"}})
	r := f.verifyExport(t, res.body)
	require.True(t, r.Valid(), "%+v", r.Problems)
	require.GreaterOrEqual(t, r.Chains, int64(2))

	for params, field := range map[string]string{
		"format=xml":           "format",
		"start_time=yesterday": "start_time",
		"start_time=2025-12-02&end_time=2025-12-01":     "start_time",
		"correlation_id=%00":                            "correlation_id",
		"end_time=2025-13-01T00:00:00Z&format=ndjson":   "end_time",
		"namespace=%FF&start_time=2025-12-01T00:00:00Z": "namespace",
	} {
		res := f.do(http.MethodGet, "/api/v1/audit/export?"+params, "", nil)
		p := requireProblem(t, res, http.StatusBadRequest, "invalid-query-parameter")
		require.Contains(t, p["field_errors"], field, params)
	}

	metrics := scrape(t, f.fixture)
	require.Contains(t, metrics, `auditstream_exports_total{result="complete"} 5`)
	require.NotContains(t, metrics, `auditstream_export_bytes_total 0`)
}

// TestExportTampered: the exporter's signed check names an event changed
// in the database before the export.
func TestExportTampered(t *testing.T) {
	f := newIntegrityFixture(t)
	corr, events := f.chain(t)
	require.NoError(t, verifytest.Tamperings()[0].Apply(t.Context(), f.store.Pool(), f.keys, corr))
	res := f.export(t, url.Values{"correlation_id": {corr}, "format": {"json"}})
	r := f.verifyExport(t, res.body)
	require.Len(t, r.Problems, 1, "the file is what the service signed: %+v", r.Problems)
	require.Equal(t, integrity.ExportTampered, r.Problems[0].Kind)
	require.Equal(t, int64(1), r.Server.BrokenChainEvents)
	require.Equal(t, events[2].EventID, r.Server.TamperedEventIDs[0])
	require.Equal(t, integrity.BreakAltered, r.Breaks[0].Kind, "and the offline check with the keys sees it too")
}

// TestExportLimits: past EXPORT_MAX_DURATION the export ends with a signed
// trailer saying it is incomplete; a principal limited to namespaces
// exports only those.
func TestExportLimits(t *testing.T) {
	f := newIntegrityFixture(t, func(c *api.Config, _ *api.Deps) { c.ExportMaxDuration = time.Nanosecond })
	corr, _ := f.chain(t)
	res := f.export(t, url.Values{"correlation_id": {corr}})
	require.Equal(t, http.StatusOK, res.status)
	r := f.verifyExport(t, res.body)
	require.Len(t, r.Problems, 1, "%+v", r.Problems)
	require.Equal(t, integrity.ExportIncomplete, r.Problems[0].Kind)
	require.Contains(t, r.Metadata.IncompleteReason, "EXPORT_MAX_DURATION")
	require.False(t, r.Metadata.Complete)
	require.Contains(t, scrape(t, f.fixture), `auditstream_exports_total{result="incomplete"} 1`)

	f = newIntegrityFixture(t)
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "billing", SHA256: auth.TokenSHA256("ast_billing"), Scopes: []auth.Scope{auth.ScopeRead}, Namespaces: []string{"billing"}},
	)
	awaitToken(t, f.fixture, "ast_billing")
	corr, _ = f.chain(t)
	res = f.export(t, url.Values{"correlation_id": {corr}}, "Authorization", "Bearer ast_billing")
	r = f.verifyExport(t, res.body)
	require.True(t, r.Valid(), "%+v", r.Problems)
	require.Zero(t, r.Events, "none of the chain's events is in billing")
	require.Equal(t, []string{"billing"}, r.Metadata.QueryFilters.RestrictedTo)
	requireProblem(t, f.export(t, url.Values{"namespace": {"payments"}}, "Authorization", "Bearer ast_billing"), http.StatusForbidden, "forbidden")
}
