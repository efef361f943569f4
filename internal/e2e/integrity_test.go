package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

// TestIntegrityThroughTheBinaries: events posted to ingest-api are chained
// by the writer and anchored by its signed checkpoints in the topic; the
// API verifies the chain and exports it signed; auditctl verifies the
// export offline and the chains against the database and the topic; and
// a chain rewritten in the database with the right key is named by both.
func TestIntegrityThroughTheBinaries(t *testing.T) {
	k := testenv.NewKafka(t, nil)
	pg := testenv.NewPostgres(t)
	dir := t.TempDir()
	keys := testenv.NewIntegrityKeys(t)
	sourceKeys := testenv.NewSourceKeys(t)
	exportPubFile := keys.ExportPublicKeyFile
	token, entry, err := auth.NewToken("auditor", []auth.Scope{auth.ScopeWrite, auth.ScopeRead}, nil)
	require.NoError(t, err)
	tokensFile := filepath.Join(dir, "tokens.yaml")
	require.NoError(t, auth.TokensFile{Tokens: []auth.TokenEntry{entry}}.WriteFile(tokensFile))

	env := append(k.Env(), "DATABASE_URL="+pg.URL(), "SOURCE_KEYS_FILE="+sourceKeys)
	writer := start(t, "writer", append(env, append(keys.Env(), "CHECKPOINT_INTERVAL=1s")...)...)
	api := start(t, "ingest-api", append(append(env, "AUTH_TOKENS_FILE="+tokensFile), keys.APIEnv()...)...)
	writer.awaitReady(t)
	api.awaitReady(t)
	base := "http://" + api.addr

	corr := "e2e-chain-" + uuid.NewString()
	var batch []string
	for range verifytest.ChainLength {
		batch = append(batch, eventJSON(uuid.NewString(), corr))
	}
	code, body, err := httpDoAs(token, http.MethodPost, base+"/api/v1/audit/events/batch", "["+strings.Join(batch, ",")+"]")
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, code, body)

	verifyChain := func() map[string]any {
		code, body, err := httpDoAs(token, http.MethodPost, base+"/api/v1/audit/verify-chain", fmt.Sprintf(`{"correlation_id":%q}`, corr))
		require.NoError(t, err)
		var res map[string]any
		if code == http.StatusOK {
			require.NoError(t, json.Unmarshal([]byte(body), &res))
		}
		return res
	}
	testenv.Await(t, 60*time.Second, "the chain stored and covered by a published checkpoint", func() (bool, string) {
		res := verifyChain()
		cp, _ := res["checkpoint"].(map[string]any)
		return res["is_valid"] == true && cp != nil && cp["covered"] == float64(verifytest.ChainLength), fmt.Sprint(res)
	})

	code, pem, err := httpDo(http.MethodGet, base+"/api/v1/audit/checkpoints/public-key", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, string(readFile(t, keys.PublicKeyFile)), pem, "the writers' key, to anyone")

	code, export, err := httpDoAs(token, http.MethodGet, base+"/api/v1/audit/export?correlation_id="+corr, "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	exportFile := filepath.Join(dir, "export.ndjson")
	require.NoError(t, os.WriteFile(exportFile, []byte(export), 0o600))
	code, out, stderr := run(t, "auditctl", []string{"verify-export", exportFile, "--public-key", exportPubFile, "--integrity-keys", keys.KeysFile})
	require.Equal(t, 0, code, "%s\n%s", out, stderr)
	require.Contains(t, out, fmt.Sprintf("%d event(s) in 1 chain(s)", verifytest.ChainLength))
	cut := filepath.Join(dir, "cut.ndjson")
	require.NoError(t, os.WriteFile(cut, []byte(export[:len(export)/2]), 0o600))
	code, out, _ = run(t, "auditctl", []string{"verify-export", cut, "--public-key", exportPubFile})
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "PROBLEM truncated")

	verifyArgs := []string{"verify", "--database-url", pg.URL(), "--integrity-keys-file", keys.KeysFile,
		"--checkpoint-public-key", keys.PublicKeyFile, "--json"}
	code, out, stderr = run(t, "auditctl", verifyArgs, k.Env()...)
	require.Equal(t, 0, code, "%s\n%s", out, stderr)
	require.Contains(t, out, `"ok":true`)

	// A rewrite with the right HMAC key, its traces in the database
	// erased too: only the checkpoint in the topic contradicts it.
	ikeys, err := integrity.LoadKeys(keys.KeysFile)
	require.NoError(t, err)
	pool, err := pgxpool.New(t.Context(), pg.URL())
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, verifytest.Rewrite(t.Context(), pool, ikeys, corr))
	res := verifyChain()
	require.Equal(t, false, res["is_valid"], "%v", res)
	first := res["tampered_events"].([]any)[0].(map[string]any)
	require.Equal(t, "checkpoint", first["kind"])

	require.NoError(t, verifytest.Exec(t.Context(), pool, `UPDATE chain_heads SET last_checkpoint_id = NULL, checkpoint_id = NULL WHERE correlation_id = $1`, corr))
	code, out, _ = run(t, "auditctl", verifyArgs, k.Env()...)
	require.Equal(t, 1, code, out)
	var sum struct {
		BrokenChains []struct {
			CorrelationID string `json:"correlation_id"`
			Breaks        []struct {
				Kind     string `json:"kind"`
				ChainSeq int64  `json:"chain_seq"`
			} `json:"breaks"`
		} `json:"broken_chains"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.Len(t, sum.BrokenChains, 1)
	require.Equal(t, corr, sum.BrokenChains[0].CorrelationID)
	require.Equal(t, "checkpoint", sum.BrokenChains[0].Breaks[0].Kind)
	require.Equal(t, int64(verifytest.ChainLength), sum.BrokenChains[0].Breaks[0].ChainSeq)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
