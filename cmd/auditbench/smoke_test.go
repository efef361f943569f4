package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the api stage re-execute this test binary as the bare gin
// baseline process, as it does the auditbench binary.
func TestMain(m *testing.M) {
	if addr := os.Getenv(bareGinEnv); addr != "" {
		if err := serveBareGin(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// TestSmokeAll runs `auditbench all` with tiny sizes against the real
// binaries on the embedded stack (or KAFKA_BROKERS / DATABASE_URL), so a
// broken `make bench` shows up in `go test ./...`; it checks that every
// expected figure is in the table and the JSON, with sane values. The
// figures themselves mean nothing at these sizes.
func TestSmokeAll(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, a broker and the binaries (~45 s)")
	}
	out := filepath.Join(t.TempDir(), "latest.json")
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"all", "--api-duration", "1s", "--api-warmup", "300ms", "--writer-rows", "5000", "--writer-backlog-rows", "20000",
		"--lag-duration", "6s", "--query-rows", "50000", "--query-iterations", "10", "--verify-events", "3000", "--verify-iterations", "1", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("auditbench all exited %d: %s\n%s", code, stderr.String(), tail(stdout.String(), 6000))
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]struct {
		Value  float64 `json:"value"`
		Unit   string  `json:"unit"`
		Status string  `json:"status"`
		Notes  string  `json:"notes"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	table := stdout.String()
	positive := []string{
		"api.bare_gin.req_per_s", "api.bare_gin.p50", "api.bare_gin.p99",
		"api.single.req_per_s", "api.single.p50", "api.single.p99", "api.ratio.single_vs_bare_gin",
		"api.batch100.events_per_s", "api.batch1000.events_per_s",
		"api.single_noauth.req_per_s", "api.single_jwt.req_per_s", "api.ratio.single_vs_noauth", "api.ratio.single_jwt_vs_noauth",
		"api.traced.single.req_per_s", "api.traced.ratio.single", "api.traced.batch100.events_per_s", "api.traced.ratio.batch100", "api.traced.exported_bytes",
		"api.proc.ingest-api.peak_rss", "api.proc.ingest-api.cpu", "api.proc.bare-gin.peak_rss",
		"writer.rawcopy.rows_per_s", "writer.writer.rows_per_s", "writer.writer.rows_per_s_from_start",
		"writer.ratio.writer_vs_rawcopy", "writer.proc.writer.peak_rss", "writer.proc.writer.cpu",
		"writer.nochain.rows_per_s", "writer.ratio.chain_vs_nochain",
		"writer.restart.static_s", "writer.restart.dynamic_s", "writer.backlog.peak_rss", "writer.backlog.rows_per_s",
		"lag.max_rate", "lag.rate", "lag.visible.p50", "lag.visible.p99", "lag.ingested.p99",
		"lag.writer_rss.start", "lag.writer_rss.end", "lag.writer_rss.growth",
		"lag.proc.writer.peak_rss", "lag.proc.ingest-api.peak_rss", "lag.proc.writer.cpu",
		"query.correlation_id.p50", "query.correlation_id.p99", "query.event_type_24h.p99",
		"query.page1000_cursor.p99", "query.page1000_offset.p99",
		"query.detail_24h.p99", "query.detail_corr.p99", "query.detail_alone.p99",
		"spool.kafka_up.req_per_s", "spool.spooled.req_per_s", "spool.ratio.spooled_vs_kafka_up", "spool.drain.records_per_s", "spool.drain.resume_delay",
		"verify.setup.store_chain", "verify.chain_3000.verify_chain", "verify.chain_3000.export", "verify.chain_3000.export_size",
		"all.total_time",
	}
	for _, name := range positive {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s missing from the JSON", name)
			continue
		}
		if !(r.Value > 0) {
			t.Errorf("%s = %v, want > 0", name, r.Value)
		}
		if !strings.Contains(table, "\n"+name+" ") {
			t.Errorf("%s missing from the table", name)
		}
	}
	for _, p := range []string{"api.bare_gin", "api.single", "lag.visible", "lag.ingested", "query.correlation_id"} {
		if got[p+".p99"].Value < got[p+".p50"].Value {
			t.Errorf("%s: p99 %v < p50 %v", p, got[p+".p99"].Value, got[p+".p50"].Value)
		}
	}
	// Every ratio and target carries a status, every figure a note saying
	// what it was measured against.
	for _, name := range []string{"api.ratio.single_vs_bare_gin", "writer.ratio.writer_vs_rawcopy", "writer.ratio.chain_vs_nochain",
		"lag.visible.p99", "lag.writer_rss.growth"} {
		if s := got[name].Status; s != "PASS" && s != "MISS" {
			t.Errorf("%s: status %q, want PASS or MISS", name, s)
		}
	}
	for _, name := range []string{"api.single.req_per_s", "api.bare_gin.req_per_s", "writer.rawcopy.rows_per_s", "writer.writer.rows_per_s",
		"writer.nochain.rows_per_s"} {
		if got[name].Notes == "" {
			t.Errorf("%s has no note", name)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", tail(table, 8000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
