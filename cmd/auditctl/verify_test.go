package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/checkpoint"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

var topicSeq atomic.Int64

// verifyEnv is what auditctl verify runs against: a database of its own
// whose chains a store links with the writer's keys, and a checkpoints
// topic that the writer's checkpoint loop publishes to.
type verifyEnv struct {
	pg        *testenv.Postgres
	store     *store.Store
	keys      *integrity.Keys
	files     testenv.IntegrityKeys
	topic     string
	publisher *checkpoint.Publisher
}

func newVerifyEnv(t *testing.T) *verifyEnv {
	t.Helper()
	ctx := t.Context()
	e := &verifyEnv{pg: testenv.NewPostgres(t), files: testenv.NewIntegrityKeys(t), topic: fmt.Sprintf("test.checkpoints.%d", topicSeq.Add(1))}
	_, err := store.Migrate(ctx, e.pg.URL(), zap.NewNop())
	require.NoError(t, err)
	e.keys, err = integrity.LoadKeys(e.files.KeysFile)
	require.NoError(t, err)
	e.store, err = store.Open(ctx, store.Config{URL: e.pg.URL(), Log: zap.NewNop(), Chain: e.keys})
	require.NoError(t, err)
	t.Cleanup(e.store.Close)

	require.NoError(t, shared.kafka.CreateTopics(ctx, map[string]int32{e.topic: 1}))
	producer, err := kafka.NewProducer(kafka.Config{Brokers: shared.kafka.Brokers(), Version: "3.6.0", ClientID: "auditctl-test",
		PublishTimeout: 10 * time.Second}, nil, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, producer.Connect(ctx))
	t.Cleanup(func() { _ = producer.Close() })
	signer, err := integrity.LoadSigner(e.files.SigningKeyFile)
	require.NoError(t, err)
	e.publisher, err = checkpoint.New(checkpoint.Config{Interval: time.Hour, Topic: e.topic, Writer: "test"}, e.store, producer, signer,
		zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	return e
}

// chain stores a chain of verifytest.ChainLength events.
func (e *verifyEnv) chain(t *testing.T) string {
	t.Helper()
	corr := "ctl-" + uuid.NewString()
	_, err := e.store.Write(t.Context(), verifytest.Events(corr, verifytest.ChainLength), nil)
	require.NoError(t, err)
	return corr
}

func (e *verifyEnv) verify(t *testing.T, extra ...string) (int, string, string) {
	t.Helper()
	return run(t, append([]string{"verify", "--kafka-brokers", strings.Join(shared.kafka.Brokers(), ","), "--database-url", e.pg.URL(),
		"--checkpoints-topic", e.topic, "--integrity-keys-file", e.files.KeysFile, "--checkpoint-public-key", e.files.PublicKeyFile}, extra...)...)
}

func (e *verifyEnv) verifyJSON(t *testing.T, extra ...string) (int, verifyJSON) {
	t.Helper()
	code, out, stderr := e.verify(t, append(extra, "--json")...)
	var sum verifyJSON
	require.NoError(t, json.Unmarshal([]byte(out), &sum), "stdout %q, stderr %q", out, stderr)
	return code, sum
}

// TestVerify: every chain verifies against the database and the topic's
// checkpoints (exit 0); each tampering is found and named at its first
// broken event (exit 1), also a rewrite whose database anchors were
// erased, which only the topic still contradicts.
func TestVerify(t *testing.T) {
	e := newVerifyEnv(t)
	ctx := t.Context()
	clean := e.chain(t)
	tampered := map[string]verifytest.Tampering{}
	for _, tc := range verifytest.Tamperings() {
		tampered[e.chain(t)] = tc
	}
	thorough := e.chain(t)
	require.NoError(t, e.publisher.Checkpoint(ctx))
	pending := e.chain(t) // moved since the last checkpoint: verified on its hashes alone

	code, out, stderr := e.verify(t)
	require.Equal(t, 0, code, "stdout %s\nstderr %s", out, stderr)
	require.Contains(t, out, "result: every chain verifies")
	require.Contains(t, out, fmt.Sprintf("chains: %d verified, %d valid, 0 broken", len(tampered)+3, len(tampered)+3))

	for corr, tc := range tampered {
		require.NoError(t, tc.Apply(ctx, e.store.Pool(), e.keys, corr), tc.Name)
	}
	// Someone holding the HMAC key rewrites a chain and erases what the
	// database says anchored it.
	require.NoError(t, verifytest.Rewrite(ctx, e.store.Pool(), e.keys, thorough))
	require.NoError(t, verifytest.Exec(ctx, e.store.Pool(), `UPDATE chain_heads SET last_checkpoint_id = NULL, checkpoint_id = NULL
		WHERE correlation_id = $1`, thorough))

	code, sum := e.verifyJSON(t)
	require.Equal(t, 1, code)
	require.False(t, sum.OK)
	require.Empty(t, sum.Checkpoints.Problems)
	require.Equal(t, int64(len(tampered)+3), sum.Chains)
	require.Equal(t, int64(2), sum.ValidChains, "the clean and the pending chain")
	broken := map[string]brokenJSON{}
	for _, b := range sum.BrokenChains {
		broken[b.CorrelationID] = b
	}
	require.NotContains(t, broken, clean)
	require.NotContains(t, broken, pending)
	for corr, tc := range tampered {
		b, ok := broken[corr]
		require.True(t, ok, "%s not found", tc.Name)
		require.Equal(t, tc.Kind, b.Breaks[0].Kind, "%s: %+v", tc.Name, b.Breaks[0])
		require.Equal(t, tc.Seq, b.Breaks[0].ChainSeq, "%s: %+v", tc.Name, b.Breaks[0])
	}
	require.Equal(t, integrity.BreakCheckpoint, broken[thorough].Breaks[0].Kind, "the topic still holds the checkpoint")

	code, out, _ = e.verify(t)
	require.Equal(t, 1, code)
	require.Contains(t, out, "result: NOT VERIFIED")
	for corr, tc := range tampered {
		require.Contains(t, out, fmt.Sprintf("BROKEN %s at chain_seq %d (%s)", corr, tc.Seq, tc.Kind))
	}
}

// TestVerifyCheckpointRecords: checkpoint records deleted or changed in
// the database are found against the topic; a time range selects the
// chains its checkpoints recorded.
func TestVerifyCheckpointRecords(t *testing.T) {
	e := newVerifyEnv(t)
	ctx := t.Context()
	first := e.chain(t)
	require.NoError(t, e.publisher.Checkpoint(ctx))
	code, sum := e.verifyJSON(t, "--since", "1h")
	require.Equal(t, 0, code)
	require.Equal(t, int64(1), sum.Chains)
	code, sum = e.verifyJSON(t, "--until", "1h")
	require.Equal(t, 0, code)
	require.Zero(t, sum.Chains, "nothing changed before an hour ago")

	e.chain(t)
	require.NoError(t, e.publisher.Checkpoint(ctx))
	require.NoError(t, verifytest.Exec(ctx, e.store.Pool(), `DELETE FROM integrity_checkpoints WHERE id = 2`))
	code, sum = e.verifyJSON(t)
	require.Equal(t, 1, code)
	require.Len(t, sum.Checkpoints.Problems, 1)
	require.Contains(t, sum.Checkpoints.Problems[0], "checkpoint 2 is in the topic but not in integrity_checkpoints")
	require.Equal(t, int64(2), sum.Checkpoints.LastID)

	require.NoError(t, verifytest.Exec(ctx, e.store.Pool(), `UPDATE integrity_checkpoints SET document = convert_to(replace(convert_from(document, 'UTF8'), $1, 'forged'), 'UTF8')
		WHERE id = 1`, first))
	code, out, _ := e.verify(t)
	require.Equal(t, 1, code)
	require.Contains(t, out, "CHECKPOINT checkpoint 1 in integrity_checkpoints differs from the topic's")

	code, _, stderr := e.verify(t, "--since", "tomorrow")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--since")
}
