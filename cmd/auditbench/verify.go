package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/verify"
)

const verifySynopsis = `
Measures verify-chain and the export on one long chain, as a client sees
them: --events events of one correlation_id are stored through the store's
own write path (linked to the chain in each batch's transaction) and
checkpointed, then POST /api/v1/audit/verify-chain and GET
/api/v1/audit/export of that chain are sent to the real api.NewHandler on a
127.0.0.1 listener, --iterations times each (median reported). Both stream
the chain from one snapshot in constant memory, so the time grows with the
length and the memory does not.

PostgreSQL is $DATABASE_URL when set (an empty database), else a throwaway
cluster, removed at exit.`

type verifyConfig struct {
	Events     int `default:"${verify_events=100000}" help:"Length of the chain."`
	Iterations int `default:"3" help:"Measured requests of each kind."`
}

type verifyCmd struct {
	verifyConfig `embed:""`
}

func (verifyCmd) Help() string { return verifySynopsis }

func (c *verifyCmd) Run(r *run) error {
	return r.record(verifyStage(r.ctx, c.verifyConfig, r.logf, r.env.Params))
}

// verifyBatch is how many events one Write links, the writer's default
// batch size.
const verifyBatch = 5000

func verifyStage(ctx context.Context, cfg verifyConfig, logf func(string, ...any), params map[string]string) ([]Result, error) {
	if cfg.Events < 1 || cfg.Iterations < 1 {
		return nil, fmt.Errorf("need --events >= 1 and --iterations >= 1")
	}
	params["verify_events"] = strconv.Itoa(cfg.Events)
	pg, err := openDatabase(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer pg.Close()
	if _, err := store.Migrate(ctx, pg.URL, nil); err != nil {
		return nil, err
	}
	k, err := keyring.NewKey("bench")
	if err != nil {
		return nil, err
	}
	ring, err := keyring.Parse(keyring.Marshal(k), "")
	if err != nil {
		return nil, err
	}
	keys := integrity.NewKeys(ring)
	db, err := store.Open(ctx, store.Config{URL: pg.URL, Chain: keys})
	if err != nil {
		return nil, err
	}
	defer db.Close()

	corr := "bench-chain-" + uuid.NewString()
	logf("storing a chain of %s events ...", thousands(int64(cfg.Events)))
	start := time.Now()
	if err := storeChain(ctx, db, corr, cfg.Events); err != nil {
		return nil, err
	}
	stored := time.Since(start)
	checkpointSigner, checkpointKeys, err := newSigner()
	if err != nil {
		return nil, err
	}
	if _, err := db.RecordCheckpoints(ctx, 100000, func(prev store.PreviousCheckpoint, heads []integrity.CheckpointHead) ([]*integrity.SignedCheckpoint, error) {
		return integrity.SignCheckpoints(checkpointSigner, "auditbench", time.Now(), prev.ID, prev.Hash, heads)
	}); err != nil {
		return nil, err
	}
	results := []Result{{Name: "verify.setup.store_chain", Value: stored.Seconds(), Unit: "s",
		Notes: fmt.Sprintf("%s events of one chain through store.Write, %d a batch (%.0f rows/s)", thousands(int64(cfg.Events)), verifyBatch,
			float64(cfg.Events)/stored.Seconds())}}

	exportSigner, _, err := newSigner()
	if err != nil {
		return nil, err
	}
	reader, err := query.NewReader(db.Pool(), query.Config{StatementTimeout: statementTimeout, CountCap: countCap})
	if err != nil {
		return nil, err
	}
	base, stop, err := serveAPI(db, func(_ *api.Config, d *api.Deps) {
		d.Integrity = api.Integrity{Verifier: verify.New(reader, keys, checkpointKeys, 0), CheckpointKeys: checkpointKeys,
			Exporter: reader, ExportSigner: exportSigner, Keys: keys}
	})
	if err != nil {
		return results, err
	}
	defer stop()

	var verifyTimes, exportTimes latencies
	var exportBytes int64
	for range cfg.Iterations {
		d, err := timeVerifyChain(ctx, base, corr, int64(cfg.Events))
		if err != nil {
			return results, err
		}
		verifyTimes = append(verifyTimes, d)
		d, n, err := timeExport(ctx, base, corr)
		if err != nil {
			return results, err
		}
		exportTimes, exportBytes = append(exportTimes, d), n
	}
	v, x := verifyTimes.quantile(0.5), exportTimes.quantile(0.5)
	logf("verify-chain %s, export %s (%d MiB)", v.Round(time.Millisecond), x.Round(time.Millisecond), exportBytes>>20)
	name := "verify.chain_" + strconv.Itoa(cfg.Events)
	return append(results,
		Result{Name: name + ".verify_chain", Value: v.Seconds(), Unit: "s",
			Notes: fmt.Sprintf("median of %d POST /api/v1/audit/verify-chain, every HMAC and the checkpoint checked (%.0f events/s)",
				cfg.Iterations, float64(cfg.Events)/v.Seconds())},
		Result{Name: name + ".export", Value: x.Seconds(), Unit: "s",
			Notes: fmt.Sprintf("median of %d GET /api/v1/audit/export?correlation_id=, ndjson, signed, read in full (%.1f MiB/s)",
				cfg.Iterations, float64(exportBytes)/(1<<20)/x.Seconds())},
		Result{Name: name + ".export_size", Value: float64(exportBytes) / (1 << 20), Unit: "MiB"},
	), nil
}

// storeChain writes n events of corr in batches, as the writer does.
func storeChain(ctx context.Context, db *store.Store, corr string, n int) error {
	batch := make([]audit.Event, 0, verifyBatch)
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	for i := range n {
		ns := "bench"
		batch = append(batch, audit.Event{EventID: uuid.New(), Version: "1.0", EventType: "bench.step", EventTimestamp: at.Add(time.Duration(i) * time.Millisecond),
			EventCategory: "workflow", EventAction: "step", EventOutcome: "success", CorrelationID: corr, Namespace: &ns,
			EventData: json.RawMessage(fmt.Sprintf(`{"step": %d, "labels": {"pod": "worker-%d", "zone": "eu-1a"}}`, i, i%16))})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.Write(ctx, batch, nil); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

func newSigner() (*integrity.Signer, *integrity.PublicKeys, error) {
	priv, pub := integrity.GenerateSigningKey()
	s, err := integrity.ParseSigner(priv)
	if err != nil {
		return nil, nil, err
	}
	keys, err := integrity.ParsePublicKeys(pub)
	return s, keys, err
}

func timeVerifyChain(ctx context.Context, base, corr string, events int64) (time.Duration, error) {
	body, _ := json.Marshal(api.VerifyChainRequest{CorrelationID: corr})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/audit/verify-chain", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var out api.VerifyChainResponse
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("verify-chain: %d: %w", res.StatusCode, err)
	}
	d := time.Since(start)
	if !out.IsValid || out.TotalEvents != events || out.Checkpoint == nil {
		return 0, fmt.Errorf("verify-chain: the bench chain did not verify whole: %s", out.Message)
	}
	return d, nil
}

func timeExport(ctx context.Context, base, corr string) (time.Duration, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/audit/export?correlation_id="+corr, nil)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	var last lastLine
	n, err := io.Copy(&last, res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("export: %d: %v", res.StatusCode, err)
	}
	d := time.Since(start)
	if !bytes.Contains(last.line, []byte(`"complete":true`)) {
		return 0, 0, fmt.Errorf("export: it did not end with complete signed metadata: %.300s", last.line)
	}
	return d, n, nil
}

// lastLine keeps the last line written to it: an export's signed metadata.
type lastLine struct {
	line []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	trimmed := bytes.TrimSuffix(p, []byte("\n"))
	if i := bytes.LastIndexByte(trimmed, '\n'); i >= 0 {
		l.line = append(l.line[:0], trimmed[i+1:]...)
	} else {
		l.line = append(l.line, trimmed...)
	}
	return len(p), nil
}
