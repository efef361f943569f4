package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/eventgen"
	"github.com/auditstream/auditstream/internal/testenv"
)

const spoolSynopsis = `
The local spool (SPEC 11) over real HTTP: the real ingest-api with SPOOL_DIR
on this machine's disk, on an embedded broker of its own that the stage stops
and restarts (always embedded: it must be able to take the broker down).
--concurrency keep-alive clients post single events back to back for
--duration per case, after --warmup:

  kafka_up   POST /api/v1/audit/events with Kafka up, spool empty (201)
  spooled    the same with the broker stopped: every answer is 202 from the
             spool (append + group-committed fsync)

then the broker comes back, and the drain rate is the spooled records
published to Kafka and acknowledged per second, from the restart until the
spool is empty.`

type spoolCmd struct {
	apiConfig `embed:""`
}

func (spoolCmd) Help() string { return spoolSynopsis }

func (c *spoolCmd) Run(r *run) error {
	results, err := spoolStage(r.ctx, c.apiConfig, r.logf, r.env.Params)
	return r.record(results, err)
}

func spoolStage(ctx context.Context, cfg apiConfig, logf func(string, ...any), params map[string]string) ([]Result, error) {
	if cfg.Duration <= 0 || cfg.Concurrency < 1 {
		return nil, fmt.Errorf("spool: need --duration > 0 and --concurrency >= 1")
	}
	st, err := startStack(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	dbURL, _, err := st.freshDB(ctx, "spool")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "auditbench-spool-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	k, err := testenv.StartRestartableKafka(map[string]int32{st.topics.events: benchPartitions, st.topics.notifications: 1,
		st.topics.dlq: 1, st.topics.parked: 1}, filepath.Join(dir, "kafka"))
	if err != nil {
		return nil, err
	}
	defer k.Close()
	spoolDir := filepath.Join(dir, "spool")
	params["spool_dir_fs"] = fsType(dir)
	ap, base, err := st.startIngestAPI(ctx, dbURL, []string{"AUTH_DISABLED=true",
		"KAFKA_BROKERS=" + strings.Join(k.Brokers(), ","), "SPOOL_DIR=" + spoolDir, "PUBLISH_TIMEOUT=1s"}, logf)
	if err != nil {
		return nil, err
	}
	defer ap.stop()

	events := eventgen.Events(1000, eventgen.Options{Seed: 3})
	single := make([][]byte, len(events))
	for i := range events {
		single[i] = events[i].AppendJSON(nil)
	}
	body := func(w, i int) []byte { return single[(w*7919+i)%len(single)] }
	run := func(name string) (loadResult, error) {
		return measureCase(ctx, cfg, logf, "spool", name, base+"/api/v1/audit/events", "", 1, body)
	}
	note := func(r loadResult, what string) string { return caseNote(cfg, r, what) }

	up, err := run("kafka_up")
	if err != nil {
		return nil, err
	}
	results := []Result{
		{Name: "spool.kafka_up.req_per_s", Value: up.rate(), Unit: "req/s",
			Notes: note(up, "BASELINE: real ingest-api with SPOOL_DIR, Kafka up and the spool empty: published straight to Kafka (201)")},
		{Name: "spool.kafka_up.p99", Value: ms(up.lat.quantile(0.99)), Unit: "ms"},
	}
	k.Stop()
	down, err := run("spooled")
	if err != nil {
		return results, err
	}
	results = append(results,
		Result{Name: "spool.spooled.req_per_s", Value: down.rate(), Unit: "req/s",
			Notes: note(down, "the same with the broker stopped: answered 202 from the spool (append, group-committed fsync on "+params["spool_dir_fs"]+")")},
		Result{Name: "spool.spooled.p99", Value: ms(down.lat.quantile(0.99)), Unit: "ms"},
		Result{Name: "spool.ratio.spooled_vs_kafka_up", Value: down.rate() / up.rate(), Unit: "x",
			Notes: "spool.spooled.req_per_s / spool.kafka_up.req_per_s, same run"},
	)

	held, err := spoolRecords(base)
	if err != nil {
		return results, err
	}
	logf("spool: %d records held; broker back, draining ...", held)
	began := time.Now()
	if err := k.Restart(); err != nil {
		return results, err
	}
	var resumed time.Time // the first acknowledgement
	for {
		n, err := spoolRecords(base)
		if err != nil {
			return results, err
		}
		if n < held && resumed.IsZero() {
			resumed = time.Now()
		}
		if n == 0 {
			break
		}
		if time.Since(began) > 5*time.Minute {
			return results, fmt.Errorf("spool: %d of %d records still spooled after 5 minutes", n, held)
		}
		sleepCtx(ctx, 20*time.Millisecond)
		if err := ctx.Err(); err != nil {
			return results, err
		}
	}
	took, wait := time.Since(resumed), resumed.Sub(began)
	logf("spool: drained %d records in %s, %s after the broker's restart", held, took.Round(time.Millisecond), wait.Round(time.Millisecond))
	results = append(results,
		Result{Name: "spool.drain.records_per_s", Value: float64(held) / max(took.Seconds(), 0.001), Unit: "records/s",
			Notes: fmt.Sprintf("%d spooled records published and acknowledged (acks=all, batches of 1,000), from the first acknowledgement until the spool was empty (%s)", held, took.Round(time.Millisecond))},
		Result{Name: "spool.drain.resume_delay", Value: wait.Seconds(), Unit: "s",
			Notes: "from the broker's restart to the first acknowledged drain: the drainer's backoff (2 s at most) and sarama's partition circuit breaker, which stays open 10 s after an outage"},
	)
	if err := ap.stop(); err != nil {
		return results, err
	}
	return append(results, procResults("spool", ap, "both cases and the drain")...), nil
}

// spoolRecords reads the records the API's spool holds from /health.
func spoolRecords(base string) (int, error) {
	res, err := http.Get(base + "/health")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var h struct {
		Spool *struct{ Records int } `json:"spool"`
	}
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		return 0, err
	}
	if h.Spool == nil {
		return 0, fmt.Errorf("spool: /health shows no spool")
	}
	return h.Spool.Records, nil
}

// fsType names the file system dir is on (the figures depend on its fsync).
func fsType(dir string) string {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown file system"
	}
	best, kind := "", "unknown file system"
	for line := range strings.SplitSeq(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(dir, f[1]) && len(f[1]) > len(best) {
			best, kind = f[1], f[2]
		}
	}
	return fmt.Sprintf("%s (%q)", kind, best)
}
