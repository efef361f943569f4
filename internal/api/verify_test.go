package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/verify"
	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

// integrityFixture is an API serving verify-chain, the export and the
// public key over the package's database, with a store that links
// chains with the same keys, as the writer does.
type integrityFixture struct {
	*fixture
	store            *store.Store
	keys             *integrity.Keys
	checkpointSigner *integrity.Signer
	checkpointKeys   *integrity.PublicKeys
	exportKeys       *integrity.PublicKeys
}

func newIntegrityFixture(t *testing.T, opts ...fixtureOption) *integrityFixture {
	t.Helper()
	k, err := keyring.NewKey("api-test")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(k), "")
	require.NoError(t, err)
	f := &integrityFixture{keys: integrity.NewKeys(ring)}
	f.store, err = store.Open(t.Context(), store.Config{URL: shared.pg.URL(), MaxConns: 2, Log: zap.NewNop(), Chain: f.keys})
	require.NoError(t, err)
	t.Cleanup(f.store.Close)
	signerPair := func() (*integrity.Signer, *integrity.PublicKeys) {
		priv, pub := integrity.GenerateSigningKey()
		s, err := integrity.ParseSigner(priv)
		require.NoError(t, err)
		keys, err := integrity.ParsePublicKeys(pub)
		require.NoError(t, err)
		return s, keys
	}
	f.checkpointSigner, f.checkpointKeys = signerPair()
	exportSigner, exportKeys := signerPair()
	f.exportKeys = exportKeys
	wire := func(_ *api.Config, d *api.Deps) {
		d.Integrity = api.Integrity{
			Verifier:       verify.New(shared.reader, f.keys, f.checkpointKeys, 0),
			CheckpointKeys: f.checkpointKeys,
			Exporter:       shared.reader, ExportSigner: exportSigner, Keys: f.keys,
		}
	}
	f.fixture = newFixture(t, append([]fixtureOption{wire}, opts...)...)
	return f
}

// chain stores a chain of verifytest.ChainLength events (namespace
// payments) and checkpoints it, as the writer would.
func (f *integrityFixture) chain(t *testing.T) (string, []audit.Event) {
	t.Helper()
	corr := "api-chain-" + uuid.NewString()
	events := verifytest.Events(corr, verifytest.ChainLength)
	_, err := f.store.Write(t.Context(), events, nil)
	require.NoError(t, err)
	_, err = verifytest.Checkpoint(t.Context(), f.store, f.checkpointSigner)
	require.NoError(t, err)
	return corr, events
}

func (f *integrityFixture) verifyChain(t *testing.T, corr string, header ...string) (response, api.VerifyChainResponse) {
	t.Helper()
	res := f.do(http.MethodPost, "/api/v1/audit/verify-chain", "application/json", mustJSON(t, api.VerifyChainRequest{CorrelationID: corr}), header...)
	var body api.VerifyChainResponse
	if res.status == http.StatusOK {
		require.NoError(t, json.Unmarshal(res.body, &body))
	}
	return res, body
}

func scrape(t *testing.T, f *fixture) string {
	t.Helper()
	res, err := http.Get(f.metricsURL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// TestVerifyChain: a clean chain verifies, held to its checkpoint; each
// tampering of the database is answered 200 with is_valid false, naming
// the first event where the chain breaks (SPEC 9.3).
func TestVerifyChain(t *testing.T) {
	f := newIntegrityFixture(t)
	corr, _ := f.chain(t)
	res, body := f.verifyChain(t, corr)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.True(t, body.IsValid, "%s", res.body)
	require.Equal(t, api.VerifyChainResponse{CorrelationID: corr, IsValid: true, TotalEvents: 5, VerifiedEvents: 5,
		TamperedEvents: []api.TamperedEvent{}, FirstSeq: 1, LastSeq: 5, Checkpoint: body.Checkpoint,
		VerificationTime: body.VerificationTime, Message: body.Message}, body)
	require.NotNil(t, body.Checkpoint)
	require.Equal(t, int64(5), body.Checkpoint.Covered)
	require.Contains(t, body.Message, "held to signed checkpoint")
	require.WithinDuration(t, time.Now(), body.VerificationTime, time.Minute)

	for _, tc := range verifytest.Tamperings() {
		t.Run(tc.Name, func(t *testing.T) {
			corr, _ := f.chain(t)
			require.NoError(t, tc.Apply(t.Context(), f.store.Pool(), f.keys, corr))
			res, body := f.verifyChain(t, corr)
			require.Equal(t, http.StatusOK, res.status, "a broken chain is 200, as the seed system answers: %s", res.body)
			require.False(t, body.IsValid)
			first := body.TamperedEvents[0]
			require.Equal(t, tc.Kind, first.Kind, "%s", res.body)
			require.Equal(t, tc.Seq, first.ChainSeq, "%s", res.body)
			require.Contains(t, body.Message, fmt.Sprintf("broken at chain_seq %d (%s)", tc.Seq, tc.Kind))
			if tc.Kind == integrity.BreakCut {
				require.Nil(t, first.EventID, "the events after the cut are gone")
				return
			}
			var at uuid.UUID
			require.NoError(t, f.store.Pool().QueryRow(t.Context(), `SELECT event_id FROM audit_events WHERE correlation_id = $1 AND chain_seq = $2`,
				corr, tc.Seq).Scan((*[16]byte)(&at)))
			require.Equal(t, at, *first.EventID, "the event stored where it breaks")
		})
	}
	metrics := scrape(t, f.fixture)
	require.Contains(t, metrics, `auditstream_verify_runs_total{result="valid"} 1`)
	require.Contains(t, metrics, fmt.Sprintf(`auditstream_verify_runs_total{result="broken"} %d`, len(verifytest.Tamperings())))
}

// TestVerifyChainRetention: a chain whose head a real retention run
// dropped (its first two events backfilled into a partition three years
// old) verifies from the first event left, saying so; events deleted
// without a retention record are tampering.
func TestVerifyChainRetention(t *testing.T) {
	f := newIntegrityFixture(t)
	corr := "api-retention-" + uuid.NewString()
	events := verifytest.Events(corr, verifytest.ChainLength)
	for i := range events[:2] {
		events[i].EventTimestamp = events[i].EventTimestamp.AddDate(-3, 0, 0)
	}
	_, err := f.store.Write(t.Context(), events, nil)
	require.NoError(t, err)
	_, err = verifytest.Checkpoint(t.Context(), f.store, f.checkpointSigner)
	require.NoError(t, err)
	run, err := f.store.RunRetention(t.Context(), 365, uuid.New)
	require.NoError(t, err)
	dropped := map[string]string{}
	for _, o := range run.Outcomes {
		dropped[o.Partition] = o.Outcome
	}
	require.Equal(t, store.RetentionDropped, dropped[store.PartitionName(events[0].EventTimestamp)])

	_, body := f.verifyChain(t, corr)
	require.True(t, body.IsValid, "%+v", body)
	require.True(t, body.TruncatedByRetention)
	require.Equal(t, int64(3), body.FirstSeq)
	require.Equal(t, int64(3), body.TotalEvents)
	require.Contains(t, body.Message, "Retention removed 2 event(s)")

	require.NoError(t, verifytest.Exec(t.Context(), f.store.Pool(), `DELETE FROM audit_events WHERE correlation_id = $1 AND chain_seq = 4`, corr))
	_, body = f.verifyChain(t, corr)
	require.False(t, body.IsValid)
	require.Equal(t, integrity.BreakGap, body.TamperedEvents[0].Kind, "a deletion retention does not account for")
}

// TestVerifyChainAccess: audit:read is needed; a principal limited to
// namespaces verifies only chains wholly inside them, and any other is
// answered as one that does not exist; an unknown chain is 404; the body
// is checked.
func TestVerifyChainAccess(t *testing.T) {
	f := newIntegrityFixture(t)
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "writer", SHA256: auth.TokenSHA256("ast_writer"), Scopes: []auth.Scope{auth.ScopeWrite}},
		auth.TokenEntry{Name: "payments", SHA256: auth.TokenSHA256("ast_payments"), Scopes: []auth.Scope{auth.ScopeRead}, Namespaces: []string{"payments"}},
		auth.TokenEntry{Name: "billing", SHA256: auth.TokenSHA256("ast_billing"), Scopes: []auth.Scope{auth.ScopeRead}, Namespaces: []string{"billing"}},
	)
	awaitToken(t, f.fixture, "ast_billing")
	corr, _ := f.chain(t)

	res, _ := f.verifyChain(t, corr, "Authorization", "Bearer ast_writer")
	requireProblem(t, res, http.StatusForbidden, "forbidden")
	res, _ = f.verifyChain(t, corr, "Authorization", "")
	requireProblem(t, res, http.StatusUnauthorized, "unauthenticated")

	res, body := f.verifyChain(t, corr, "Authorization", "Bearer ast_payments")
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.True(t, body.IsValid)
	res, _ = f.verifyChain(t, corr, "Authorization", "Bearer ast_billing")
	outside := requireProblem(t, res, http.StatusNotFound, "not-found")
	never := "never-" + uuid.NewString()
	res, _ = f.verifyChain(t, never, "Authorization", "Bearer ast_billing")
	unknown := requireProblem(t, res, http.StatusNotFound, "not-found")
	require.Equal(t, strings.Replace(fmt.Sprint(unknown["detail"]), never, corr, 1), outside["detail"],
		"a chain outside the namespaces reads as one that is not stored")

	for body, field := range map[string]string{`{}`: "correlation_id", `{"correlation_id": ""}`: "correlation_id"} {
		res := f.do(http.MethodPost, "/api/v1/audit/verify-chain", "application/json", []byte(body))
		p := requireProblem(t, res, http.StatusBadRequest, "validation-error")
		require.Contains(t, p["field_errors"], field)
	}
	requireProblem(t, f.do(http.MethodPost, "/api/v1/audit/verify-chain", "application/json", []byte(`[1]`)), http.StatusBadRequest, "malformed-request")
	requireProblem(t, f.do(http.MethodPost, "/api/v1/audit/verify-chain", "text/plain", []byte(`{}`)), http.StatusUnsupportedMediaType, "unsupported-media-type")
}

// TestCheckpointPublicKey: served to anyone, as PEM.
func TestCheckpointPublicKey(t *testing.T) {
	f := newIntegrityFixture(t)
	res := f.do(http.MethodGet, "/api/v1/audit/checkpoints/public-key", "", nil, "Authorization", "")
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "application/x-pem-file", res.header.Get("Content-Type"))
	require.Equal(t, string(f.checkpointKeys.PEM()), string(res.body))
	keys, err := integrity.ParsePublicKeys(res.body)
	require.NoError(t, err)
	require.Equal(t, f.checkpointKeys.Fingerprints(), keys.Fingerprints())
}

// TestIntegrityNotConfigured: without their keys, the routes say which
// settings they need.
func TestIntegrityNotConfigured(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, setting string
		body                  []byte
	}{
		{http.MethodPost, "/api/v1/audit/verify-chain", "CHECKPOINT_PUBLIC_KEY_FILE", []byte(`{"correlation_id":"x"}`)},
		{http.MethodGet, "/api/v1/audit/export", "EXPORT_SIGNING_KEY_FILE", nil},
		{http.MethodGet, "/api/v1/audit/checkpoints/public-key", "CHECKPOINT_PUBLIC_KEY_FILE", nil},
	} {
		p := requireProblem(t, f.do(tc.method, tc.path, "application/json", tc.body), http.StatusServiceUnavailable, "integrity-not-configured")
		require.Contains(t, p["detail"], tc.setting)
	}
}
