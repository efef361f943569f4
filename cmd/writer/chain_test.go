package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/query"
)

// requireChains verifies the hash chain of each of the first n
// correlation ids of the pipeline with the integrity package's verifier,
// over the rows read back: every chain starts at chain_seq 1 and has no
// break, and together the chains hold every stored event of the test.
func requireChains(t *testing.T, p pipeline, keys *integrity.Keys, n int) {
	t.Helper()
	r, err := query.NewReader(shared.db, query.Config{StatementTimeout: 10 * time.Second, CountCap: 10})
	require.NoError(t, err)
	var verified int64
	for i := range n {
		corr := correlationOf(p.tag, i)
		v := keys.NewChainVerifier(corr, nil)
		require.NoError(t, r.Chain(t.Context(), corr, func(e *audit.Event) error {
			if b := v.Check(e); b != nil {
				return fmt.Errorf("chain %s breaks at chain_seq %d (%s): %s", corr, b.ChainSeq, b.Kind, b.Message)
			}
			return nil
		}))
		summary, breaks := v.Finish()
		require.Empty(t, breaks, corr)
		require.False(t, summary.Truncated, "%s starts at chain_seq 1", corr)
		verified += summary.Verified
	}
	require.Equal(t, int64(storedCount(t, p)), verified, "every stored event is in a verified chain")
	t.Logf("%d chains verified, %d events", n, verified)
}

// loadKeys loads a key file of the test's.
func loadKeys(t *testing.T, path string) *integrity.Keys {
	t.Helper()
	keys, err := integrity.LoadKeys(path)
	require.NoError(t, err)
	return keys
}
