package verify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
	"github.com/auditstream/auditstream/internal/verify"
	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

var pg *testenv.Postgres

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "verify tests", testmain.Postgres, func(ctx context.Context, s *testmain.Shared) error {
		pg = s.Postgres
		_, err := store.Migrate(ctx, pg.URL(), zap.NewNop())
		return err
	}))
}

// fixture is a store that links chains, its checkpoint signer and a
// verifier of what it stores.
type fixture struct {
	store    *store.Store
	keys     *integrity.Keys
	signer   *integrity.Signer
	signers  *integrity.PublicKeys
	verifier *verify.Verifier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	k, err := keyring.NewKey("v1")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(k), "")
	require.NoError(t, err)
	f := &fixture{keys: integrity.NewKeys(ring)}
	f.store, err = store.Open(t.Context(), store.Config{URL: pg.URL(), Log: zap.NewNop(), Chain: f.keys})
	require.NoError(t, err)
	t.Cleanup(f.store.Close)
	priv, pub := integrity.GenerateSigningKey()
	f.signer, err = integrity.ParseSigner(priv)
	require.NoError(t, err)
	f.signers, err = integrity.ParsePublicKeys(pub)
	require.NoError(t, err)
	reader, err := query.NewReader(f.store.Pool(), query.Config{StatementTimeout: 5 * time.Second, CountCap: 10})
	require.NoError(t, err)
	f.verifier = verify.New(reader, f.keys, f.signers, 0)
	return f
}

// chain stores a chain of verifytest.ChainLength events and checkpoints
// it; it returns the checkpoints that cover it.
func (f *fixture) chain(t *testing.T) (string, []*integrity.SignedCheckpoint) {
	t.Helper()
	corr := "verify-" + uuid.NewString()
	_, err := f.store.Write(t.Context(), verifytest.Events(corr, verifytest.ChainLength), nil)
	require.NoError(t, err)
	cps, err := verifytest.Checkpoint(t.Context(), f.store, f.signer)
	require.NoError(t, err)
	return corr, cps
}

// TestTamperingIsNamed: each change made behind the writer's back is
// reported at the first event where the chain breaks, whether the anchor
// comes from the database's checkpoint record or from the topic's.
func TestTamperingIsNamed(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()

	corr, _ := f.chain(t)
	res, err := f.verifier.Chain(ctx, corr, verify.Options{})
	require.NoError(t, err)
	require.True(t, res.Valid(), "%+v", res.Breaks)
	require.True(t, res.Found)
	require.Equal(t, integrity.Summary{Events: 5, Verified: 5, FirstSeq: 1, LastSeq: 5}, res.Summary)
	require.NotNil(t, res.Anchor)
	require.Equal(t, int64(verifytest.ChainLength), res.Anchor.Seq)

	for _, tc := range verifytest.Tamperings() {
		t.Run(tc.Name, func(t *testing.T) {
			corr, cps := f.chain(t)
			log := verify.NewCheckpointLog(f.signers, time.Time{}, time.Time{})
			for _, c := range cps {
				log.Add(c.Document, "test")
			}
			require.NoError(t, tc.Apply(ctx, f.store.Pool(), f.keys, corr))
			for name, opts := range map[string]verify.Options{
				"database": {},
				"topic":    {Anchor: log.Anchor(corr), UseAnchor: true},
			} {
				res, err := f.verifier.Chain(ctx, corr, opts)
				require.NoError(t, err)
				require.False(t, res.Valid(), "%s: tampering unseen", name)
				require.Equal(t, tc.Kind, res.Breaks[0].Kind, "%s: %+v", name, res.Breaks[0])
				require.Equal(t, tc.Seq, res.Breaks[0].ChainSeq, "%s: %+v", name, res.Breaks[0])
				require.NotEmpty(t, res.Breaks[0].Message)
			}
		})
	}
}

// TestCheckpointRecordTampering: a checkpoint record that was changed, or
// that the head was pointed at although it does not cover the chain, is a
// break, not an anchor.
func TestCheckpointRecordTampering(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for name, sql := range map[string]string{
		"document changed": `UPDATE integrity_checkpoints SET document = convert_to(replace(convert_from(document, 'UTF8'), '"chain_seq":5', '"chain_seq":4'), 'UTF8')
			WHERE id = (SELECT last_checkpoint_id FROM chain_heads WHERE correlation_id = $1)`,
		"head pointed elsewhere": `UPDATE chain_heads SET last_checkpoint_id = (SELECT min(id) FROM integrity_checkpoints) WHERE correlation_id = $1`,
	} {
		t.Run(name, func(t *testing.T) {
			f.chain(t) // so that the first checkpoint covers another chain
			corr, _ := f.chain(t)
			require.NoError(t, verifytest.Exec(ctx, f.store.Pool(), sql, corr))
			res, err := f.verifier.Chain(ctx, corr, verify.Options{})
			require.NoError(t, err)
			require.False(t, res.Valid())
			require.Equal(t, integrity.BreakCheckpoint, res.Breaks[0].Kind, "%+v", res.Breaks[0])
			require.Contains(t, res.Breaks[0].Message, "integrity_checkpoints")
			require.Nil(t, res.Anchor)
		})
	}
}

func TestUnknownHiddenAndRetention(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()

	res, err := f.verifier.Chain(ctx, "never-"+uuid.NewString(), verify.Options{})
	require.NoError(t, err)
	require.False(t, res.Found)
	require.True(t, res.Valid())

	corr, _ := f.chain(t)
	res, err = f.verifier.Chain(ctx, corr, verify.Options{Visible: func(ns *string) bool { return ns != nil && *ns == "other" }})
	require.NoError(t, err)
	require.True(t, res.Hidden)
	require.Zero(t, res.Events, "a hidden chain tells nothing")

	// The first two events dropped by retention: the chain verifies from
	// the third and says why the start is missing; a third event deleted
	// inside the same range is more than retention removed.
	require.NoError(t, verifytest.Exec(ctx, f.store.Pool(), `DELETE FROM audit_events WHERE correlation_id = $1 AND chain_seq <= 2`, corr))
	require.NoError(t, verifytest.RecordRetention(ctx, f.store.Pool(), corr, 1, 3, 2))
	res, err = f.verifier.Chain(ctx, corr, verify.Options{})
	require.NoError(t, err)
	require.True(t, res.Valid(), "%+v", res.Breaks)
	require.Equal(t, integrity.Summary{Events: 3, Verified: 3, FirstSeq: 3, LastSeq: 5, Truncated: true, Dropped: 2}, res.Summary)

	require.NoError(t, verifytest.Exec(ctx, f.store.Pool(), `DELETE FROM audit_events WHERE correlation_id = $1 AND chain_seq = 3`, corr))
	res, err = f.verifier.Chain(ctx, corr, verify.Options{})
	require.NoError(t, err)
	require.Equal(t, integrity.BreakGap, res.Breaks[0].Kind)
	require.Contains(t, res.Breaks[0].Message, "retention removed 2 event(s)")
}

// TestCheckpointLog: the topic's sequence is verified, repeats are
// recognised, and it is held to the database's records.
func TestCheckpointLog(t *testing.T) {
	priv, pub := integrity.GenerateSigningKey()
	signer, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	signers, err := integrity.ParsePublicKeys(pub)
	require.NoError(t, err)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var cps []*integrity.SignedCheckpoint
	var prevID int64
	var prevHash []byte
	for i, corr := range []string{"a", "b", "a"} {
		got, err := integrity.SignCheckpoints(signer, "w", base.Add(time.Duration(i)*time.Hour), prevID, prevHash,
			[]integrity.CheckpointHead{{CorrelationID: corr, Head: integrity.Head{Seq: int64(i + 1), Hash: []byte{byte(i)}}}})
		require.NoError(t, err)
		cps = append(cps, got...)
		prevID, prevHash = got[0].ID, got[0].Hash
	}

	log := verify.NewCheckpointLog(signers, base.Add(30*time.Minute), base.Add(90*time.Minute))
	for _, c := range []*integrity.SignedCheckpoint{cps[0], cps[1], cps[0], cps[2], cps[1]} {
		log.Add(c.Document, "test")
	}
	problems, _ := log.Problems()
	require.Empty(t, problems, "repeats of a published checkpoint are expected")
	require.Equal(t, 3, log.Checkpoints())
	require.Equal(t, []string{"a", "b"}, log.Chains())
	require.Equal(t, []string{"b"}, log.Changed(), "only b moved within the range")
	require.Equal(t, &verify.Anchor{CheckpointID: 3, Time: base.Add(2 * time.Hour), Head: integrity.Head{Seq: 3, Hash: []byte{2}}}, log.Anchor("a"))
	require.Nil(t, log.Anchor("c"))
	for i, c := range cps[:2] {
		log.CompareStored(c.ID, c.Document, i == 0)
	}
	log.EndCompare()
	problems, _ = log.Problems()
	require.Len(t, problems, 1)
	require.Contains(t, problems[0], "checkpoint 3 is in the topic but not in integrity_checkpoints")

	// A checkpoint removed from the topic, one from another key, and a
	// stored record that differs.
	other, _ := integrity.GenerateSigningKey()
	otherSigner, err := integrity.ParseSigner(other)
	require.NoError(t, err)
	forged, err := integrity.SignCheckpoint(otherSigner, cps[0].Checkpoint)
	require.NoError(t, err)
	log = verify.NewCheckpointLog(signers, time.Time{}, time.Time{})
	log.Add(cps[0].Document, "test@0")
	log.Add(cps[2].Document, "test@1")
	log.Add(forged.Document, "test@2")
	log.CompareStored(2, cps[1].Document, true)
	log.CompareStored(3, cps[1].Document, true)
	problems, _ = log.Problems()
	require.Len(t, problems, 4, "%q", problems)
	require.Contains(t, problems[0], "does not follow")
	require.Contains(t, problems[1], "another key")
	require.Contains(t, problems[2], "checkpoint 2 is recorded as published but the topic does not hold it")
	require.Contains(t, problems[3], "checkpoint 3 in integrity_checkpoints differs from the topic's")
}

// memorySampler reads a chain through reader and samples the heap every
// 10,000 events: what verification holds while it streams.
type memorySampler struct {
	reader *query.Reader
	peak   uint64
}

func (m *memorySampler) ReadChain(ctx context.Context, corr string, state func(query.ChainState) error, fn func(*audit.Event) error) error {
	n := 0
	return m.reader.ReadChain(ctx, corr, state, func(e *audit.Event) error {
		if n++; n%10000 == 0 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			m.peak = max(m.peak, ms.HeapAlloc)
		}
		return fn(e)
	})
}

// TestLongChain: a chain of 100,000 events verifies in constant memory
// (the seed system gives up at 10,000); the time is logged, and make bench
// measures it through the API.
func TestLongChain(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const n = 100_000
	corr := "long-" + uuid.NewString()
	for i := 0; i < n; i += 5000 {
		events := verifytest.Events(corr, 5000)
		for j := range events {
			events[j].EventData = json.RawMessage(fmt.Sprintf(`{"step": %d, "labels": {"pod": "worker-%d"}}`, i+j, j%16))
		}
		_, err := f.store.Write(ctx, events, nil)
		require.NoError(t, err)
	}
	_, err := verifytest.Checkpoint(ctx, f.store, f.signer)
	require.NoError(t, err)

	reader, err := query.NewReader(f.store.Pool(), query.Config{StatementTimeout: 5 * time.Second, CountCap: 10})
	require.NoError(t, err)
	sampler := &memorySampler{reader: reader}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	res, err := verify.New(sampler, f.keys, f.signers, 0).Chain(ctx, corr, verify.Options{})
	took := time.Since(start)
	require.NoError(t, err)
	require.True(t, res.Valid(), "%+v", res.Breaks)
	require.Equal(t, int64(n), res.Verified)
	require.Equal(t, int64(n), res.Anchor.Seq)
	grown := int64(sampler.peak) - int64(before.HeapAlloc)
	t.Logf("verified %d events in %s (%.0f events/s); heap grew at most %d KiB while streaming", n, took, n/took.Seconds(), grown>>10)
	// The chain is some 60 MiB as rows; holding it would show.
	require.Less(t, grown, int64(16<<20), "verification holds the chain in memory")
}
