package query

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

// chainStore opens a store on the package's database that links chains,
// and a checkpoint signer for it.
func chainStore(t *testing.T) (*store.Store, store.CheckpointSigner) {
	t.Helper()
	k, err := keyring.NewKey("q1")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(k), "")
	require.NoError(t, err)
	s, err := store.Open(t.Context(), store.Config{URL: db.Pool().Config().ConnString(), Log: zap.NewNop(), Chain: integrity.NewKeys(ring)})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	priv, _ := integrity.GenerateSigningKey()
	signer, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	return s, func(prev store.PreviousCheckpoint, heads []integrity.CheckpointHead) ([]*integrity.SignedCheckpoint, error) {
		return integrity.SignCheckpoints(signer, "test", time.Now(), prev.ID, prev.Hash, heads)
	}
}

func chainEvent(corr string, at time.Time, category string, ns *string) audit.Event {
	return audit.Event{EventID: uuid.New(), Version: "1", EventType: "t", EventTimestamp: at.UTC().Truncate(time.Microsecond),
		EventCategory: category, EventAction: "a", EventOutcome: "success", CorrelationID: corr,
		EventData: json.RawMessage(`{"x": 1}`), Namespace: ns}
}

func readState(t *testing.T, r *Reader, corr string) (ChainState, []int64) {
	t.Helper()
	var state ChainState
	var seqs []int64
	require.NoError(t, r.ReadChain(t.Context(), corr, func(s ChainState) error {
		state = s
		return nil
	}, func(e *audit.Event) error {
		seqs = append(seqs, *e.ChainSeq)
		return nil
	}))
	return state, seqs
}

// TestReadChainState: the head, the last checkpoint that covered the
// chain (also once the head has moved past it) and what retention removed
// come with the events, from their snapshot.
func TestReadChainState(t *testing.T) {
	s, sign := chainStore(t)
	r := newReader(t)
	ctx := t.Context()
	corr := "state-" + uuid.NewString()
	now := time.Now()

	state, seqs := readState(t, r, corr)
	require.Nil(t, state.Head, "no chain")
	require.Empty(t, seqs)

	_, err := s.Write(ctx, []audit.Event{chainEvent(corr, now, "gateway", nil), chainEvent(corr, now, "gateway", nil)}, nil)
	require.NoError(t, err)
	state, seqs = readState(t, r, corr)
	require.Equal(t, []int64{1, 2}, seqs)
	require.Equal(t, int64(2), state.Head.Seq)
	require.Nil(t, state.Checkpoint, "not checkpointed yet")

	var cps []*integrity.SignedCheckpoint
	for {
		got, err := s.RecordCheckpoints(ctx, 100000, sign)
		require.NoError(t, err)
		if len(got) == 0 {
			break
		}
		cps = append(cps, got...)
	}
	require.NotEmpty(t, cps)
	covering := cps[len(cps)-1]
	for _, moved := range []bool{false, true} {
		if moved {
			_, err = s.Write(ctx, []audit.Event{chainEvent(corr, now, "gateway", nil)}, nil)
			require.NoError(t, err)
		}
		state, seqs = readState(t, r, corr)
		require.NotNil(t, state.Checkpoint, "moved %v", moved)
		parsed, err := integrity.ParseCheckpoint(state.Checkpoint.Document)
		require.NoError(t, err)
		head, ok := parsed.HeadOf(corr)
		require.True(t, ok, "the checkpoint covers the chain (moved %v)", moved)
		require.Equal(t, int64(2), head.Seq)
		require.LessOrEqual(t, state.Checkpoint.ID, covering.ID)
		require.Equal(t, int64(len(seqs)), state.Head.Seq)
	}
	require.Empty(t, state.Dropped)

	// What retention records for the chain, and a drop from before
	// chains, which has no chain_seq range.
	require.NoError(t, verifytest.RecordRetention(ctx, db.Pool(), corr, 7, 9, 2))
	require.NoError(t, verifytest.RecordRetention(ctx, db.Pool(), corr, 1, 3, 2))
	require.NoError(t, verifytest.Exec(ctx, db.Pool(), `WITH d AS (
		INSERT INTO retention_drops (partition, period_start, period_end, events, default_days, event_id)
		VALUES ('audit_events_p201801', now(), now(), 4, 30, gen_random_uuid()) RETURNING id)
		INSERT INTO retention_dropped_chains SELECT $1, id, 4, now(), now(), NULL, NULL FROM d`, corr))
	state, _ = readState(t, r, corr)
	require.Equal(t, []integrity.Dropped{{MinSeq: 1, MaxSeq: 3, Events: 2}, {MinSeq: 7, MaxSeq: 9, Events: 2}}, state.Dropped,
		"ordered by chain_seq, without drops from before chains")
}

func newReader(t *testing.T) *Reader {
	t.Helper()
	r, err := NewReader(db.Pool(), Config{StatementTimeout: 5 * time.Second, CountCap: 100})
	require.NoError(t, err)
	return r
}

// TestExport: every matching event once, in (correlation_id, chain_seq)
// order with unchained events last in their correlation_id, the
// principal's namespaces enforced, and the caller's deadline ending it.
func TestExport(t *testing.T) {
	s, _ := chainStore(t)
	ctx := t.Context()
	r := newReader(t)
	base := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	run := uuid.NewString()
	a, b := "export-a-"+run, "export-b-"+run
	prodNS, stagingNS := "prod-"+run, "staging-"+run
	prod, staging := &prodNS, &stagingNS

	// Unchained (INTEGRITY_DISABLED) events first, then chains written out
	// of time order, b before a.
	_, err := db.Write(ctx, []audit.Event{chainEvent(a, base.Add(-time.Hour), "gateway", prod)}, nil)
	require.NoError(t, err)
	_, err = s.Write(ctx, []audit.Event{
		chainEvent(b, base.Add(time.Minute), "workflow", staging),
		chainEvent(a, base.Add(2*time.Minute), "gateway", prod),
		chainEvent(a, base, "workflow", prod),
		chainEvent(b, base.Add(-time.Minute), "gateway", staging),
	}, nil)
	require.NoError(t, err)

	type row struct {
		corr string
		seq  int64 // 0: no chain
	}
	export := func(f Filter) []row {
		t.Helper()
		var out []row
		require.NoError(t, r.Export(ctx, f, func(e *audit.Event) error {
			var seq int64
			if e.ChainSeq != nil {
				seq = *e.ChainSeq
			}
			out = append(out, row{e.CorrelationID, seq})
			return nil
		}))
		return out
	}
	span := Filter{Since: base.Add(-2 * time.Hour), Until: base.Add(time.Hour)}
	within := func(f Filter) Filter { f.Since, f.Until = span.Since, span.Until; return f }
	for _, tc := range []struct {
		name   string
		filter Filter
		want   []row
	}{
		{"everything", span, []row{{a, 1}, {a, 2}, {a, 0}, {b, 1}, {b, 2}}},
		{"one chain", within(Filter{Equal: map[string]string{"correlation_id": b}}), []row{{b, 1}, {b, 2}}},
		{"a category", within(Filter{Equal: map[string]string{"event_category": "gateway"}}), []row{{a, 1}, {a, 0}, {b, 2}}},
		{"a namespace", within(Filter{Equal: map[string]string{"namespace": *staging}}), []row{{b, 1}, {b, 2}}},
		{"restricted", within(Filter{Namespaces: []string{*prod}}), []row{{a, 1}, {a, 2}, {a, 0}}},
		{"a time range", Filter{Since: base, Until: base.Add(90 * time.Second)}, []row{{a, 2}, {b, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, export(tc.filter))
		})
	}

	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	<-short.Done()
	err = r.Export(short, span, func(*audit.Event) error { return nil })
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	require.ErrorContains(t, r.Export(ctx, Filter{Equal: map[string]string{"event_data": "x"}}, nil), "not a filter")
}

// TestChainIDsAndCheckpoints: what auditctl verify walks.
func TestChainIDsAndCheckpoints(t *testing.T) {
	s, sign := chainStore(t)
	ctx := t.Context()
	r := newReader(t)
	run := uuid.NewString()
	covered, pending := "ids-covered-"+run, "ids-pending-"+run
	_, err := s.Write(ctx, []audit.Event{chainEvent(covered, time.Now(), "gateway", nil)}, nil)
	require.NoError(t, err)
	for {
		got, err := s.RecordCheckpoints(ctx, 100000, sign)
		require.NoError(t, err)
		if len(got) == 0 {
			break
		}
	}
	_, err = s.Write(ctx, []audit.Event{chainEvent(pending, time.Now(), "gateway", nil)}, nil)
	require.NoError(t, err)

	ids := func(pendingOnly bool, until time.Time) []string {
		var out []string
		require.NoError(t, r.ChainIDs(ctx, pendingOnly, until, func(id string) error {
			if id == covered || id == pending {
				out = append(out, id)
			}
			return nil
		}))
		return out
	}
	require.Equal(t, []string{covered, pending}, ids(false, time.Time{}))
	require.Equal(t, []string{pending}, ids(true, time.Time{}))
	require.Empty(t, ids(true, time.Now().Add(-time.Hour)), "pending since after until")

	var last int64
	n := 0
	require.NoError(t, r.Checkpoints(ctx, func(c *Checkpoint) error {
		require.Greater(t, c.ID, last)
		last = c.ID
		n++
		_, err := integrity.ParseCheckpoint(c.Document)
		return err
	}))
	require.Positive(t, n)
}
