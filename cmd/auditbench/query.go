package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/eventgen"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
)

const querySynopsis = `
Measures the read side (SPEC 2.5) as a client sees it: GET /api/v1/audit/events
served by the real api.NewHandler and query.Reader on a 127.0.0.1 listener,
against PostgreSQL holding --rows generated events spread over the last
--days days. Requests are sequential on one keep-alive connection (latency,
not throughput), after a warm-up; p50/p99/max per case:

  correlation_id   correlation_id=<random existing id>
  event_type_24h   event_type=<random type>&since=24h, first page
  unfiltered       first page, no filter
  page1000_cursor  page 1,000 (limit 50) via the cursor of page 999, found
                   once by walking next_cursor from the first page
  page1000_offset  offset=49950&limit=50 (past ingest-api's QUERY_MAX_OFFSET,
                   10,000 by default, which the bench raises to show why)
  detail_24h       detail_key=signal&detail_value=<random of 1,000>&since=24h
  detail_corr      correlation_id=<random existing id>&detail_key=signal&
                   detail_value=<random>
  detail_alone     detail_key=signal&detail_value=<random>, no other filter
                   (no index serves it: the worst case, 20 requests)

Targets: p99 < 20 ms for correlation_id, event_type_24h and page1000_cursor.

PostgreSQL is $DATABASE_URL when set (with --reuse, a database already
holding exactly --rows events is measured as it is), else a throwaway
cluster, removed at exit.`

// queryConfig are the flags of the query stage.
type queryConfig struct {
	Rows       int64  `default:"${query_rows=10000000}" help:"Events in the database."`
	Iterations int    `default:"${query_iterations=500}" help:"Measured requests per case."`
	Warmup     int    `default:"50" help:"Unmeasured requests per case before measuring."`
	Days       int    `default:"60" help:"The events span this many days up to now."`
	Chunk      int64  `default:"500000" help:"Rows per INSERT while generating."`
	Reuse      bool   `help:"With DATABASE_URL: measure the data already there if it holds exactly --rows events."`
	Seed       uint64 `default:"1" help:"Seed of the request parameter choices."`
}

// Read-side settings, as ingest-api runs them.
const (
	statementTimeout = 5 * time.Second
	countCap         = 10000
	p99Target        = 20.0 // ms
	pageDepth        = 1000
	pageLimit        = 50
)

type queryCmd struct {
	queryConfig `embed:""`
}

func (queryCmd) Help() string { return querySynopsis }

func (c *queryCmd) Run(r *run) error {
	return r.record(queryStage(r.ctx, c.queryConfig, r.out, r.env.Params))
}

// queryStage checks cfg and measures; params receives what describes the
// run.
func queryStage(ctx context.Context, cfg queryConfig, out io.Writer, params map[string]string) ([]Result, error) {
	if cfg.Rows < pageDepth*pageLimit || cfg.Iterations < 1 || cfg.Warmup < 0 || cfg.Days < 2 || cfg.Chunk < 1 {
		return nil, fmt.Errorf("need --rows >= %d (page %d must exist), --iterations >= 1, --warmup >= 0, --days >= 2, --chunk >= 1",
			pageDepth*pageLimit, pageDepth)
	}
	return (&queryBench{cfg: cfg, out: out}).run(ctx, params)
}

type queryBench struct {
	cfg     queryConfig
	out     io.Writer
	results []Result
}

func (b *queryBench) logf(format string, a ...any) {
	fmt.Fprintf(b.out, format+"\n", a...)
}

func (b *queryBench) run(ctx context.Context, params map[string]string) ([]Result, error) {
	params["rows"] = strconv.FormatInt(b.cfg.Rows, 10)
	params["iterations"] = strconv.Itoa(b.cfg.Iterations)
	params["days"] = strconv.Itoa(b.cfg.Days)

	pg, err := openDatabase(ctx, b.logf)
	if err != nil {
		return nil, err
	}
	defer pg.Close()
	params["database"] = map[bool]string{true: "throwaway cluster", false: "DATABASE_URL"}[pg.Throwaway]

	version, err := store.Migrate(ctx, pg.URL, nil)
	if err != nil {
		return nil, err
	}
	b.logf("schema at migration %d", version)
	// The API's pool, as ingest-api opens it (default size).
	db, err := store.Open(ctx, store.Config{URL: pg.URL})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	for k, v := range serverFacts(ctx, db.Pool()) {
		params[k] = v
	}

	if err := b.prepareData(ctx, db, pg.Throwaway, params); err != nil {
		return b.results, err
	}

	srvURL, stop, err := serveAPI(db)
	if err != nil {
		return b.results, err
	}
	defer stop()
	b.logf("API on %s", srvURL)

	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		params["loadavg_before_measuring"] = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	err = b.measure(ctx, db, srvURL)
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		params["loadavg_after_measuring"] = strings.Join(strings.Fields(string(la))[:3], " ")
		b.logf("load average after measuring: %s (%d CPUs)", params["loadavg_after_measuring"], runtime.NumCPU())
	}
	return b.results, err
}

// prepareData makes sure the database holds cfg.Rows events: it generates
// them into an empty database, or, with --reuse, accepts a database that
// already holds exactly that many.
func (b *queryBench) prepareData(ctx context.Context, db *store.Store, throwaway bool, params map[string]string) error {
	var existing int64
	if err := db.Pool().QueryRow(ctx, "SELECT count(*) FROM audit_event_ids").Scan(&existing); err != nil {
		return fmt.Errorf("count existing events: %w", err)
	}
	switch {
	case existing == 0:
	case b.cfg.Reuse && existing == b.cfg.Rows:
		var newest time.Time
		if err := db.Pool().QueryRow(ctx, "SELECT max(event_timestamp) FROM audit_event_ids").Scan(&newest); err != nil {
			return err
		}
		age := time.Since(newest).Round(time.Minute)
		b.logf("reusing the %s events already stored (newest is %s old%s)", thousands(existing), age,
			map[bool]string{true: "; since=24h now selects fewer of them than on a fresh data set", false: ""}[age > time.Hour])
		params["data"] = "reused (newest event " + age.String() + " old)"
		if err := checkIndexesValid(ctx, db.Pool()); err != nil {
			return err
		}
		return b.analyzeIfNeeded(ctx, db)
	case b.cfg.Reuse:
		return fmt.Errorf("--reuse: the database holds %s events, not --rows %s; use an empty database or --rows %d",
			thousands(existing), thousands(b.cfg.Rows), existing)
	default:
		return fmt.Errorf("the database already holds %s events: use an empty database, or --reuse --rows %d to measure them",
			thousands(existing), existing)
	}

	b.logf("generating %s events over %d days (chunks of %s) ...", thousands(b.cfg.Rows), b.cfg.Days, thousands(b.cfg.Chunk))
	insert, vacuum, err := generate(ctx, db, dataset{
		rows:      b.cfg.Rows,
		span:      time.Duration(b.cfg.Days) * 24 * time.Hour,
		newest:    time.Now(),
		chunkSize: b.cfg.Chunk,
	}, b.logf)
	if err != nil {
		return err
	}
	total := insert + vacuum
	b.logf("generated in %s (inserts %s, VACUUM ANALYZE %s)", total.Round(time.Second), insert.Round(time.Second), vacuum.Round(time.Second))
	params["data"] = "generated"
	b.results = append(b.results, Result{
		Name: "query.setup.generate", Value: total.Seconds(), Unit: "s",
		Notes: fmt.Sprintf("%s rows into audit_events + audit_event_ids (%.0f rows/s incl. every index); VACUUM ANALYZE %s",
			thousands(b.cfg.Rows), float64(b.cfg.Rows)/insert.Seconds(), vacuum.Round(time.Second)),
	})
	var size int64
	if err := db.Pool().QueryRow(ctx, `SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('audit_events')`).Scan(&size); err == nil {
		b.results = append(b.results, Result{Name: "query.setup.audit_events_size", Value: float64(size) / (1 << 20), Unit: "MiB",
			Notes: "all partitions with their indexes"})
	}
	return nil
}

// analyzeIfNeeded runs VACUUM ANALYZE on reused data that has no
// statistics yet (generated by an interrupted run, say).
func (b *queryBench) analyzeIfNeeded(ctx context.Context, db *store.Store) error {
	var unanalyzed int
	err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_user_tables s JOIN pg_partition_tree('audit_events') p ON p.relid = s.relid
		WHERE p.isleaf AND s.n_live_tup > 0 AND s.last_analyze IS NULL AND s.last_autoanalyze IS NULL`).Scan(&unanalyzed)
	if err != nil || unanalyzed == 0 {
		return err
	}
	b.logf("reused data was never analyzed: VACUUM ANALYZE ...")
	return vacuumAnalyze(ctx, db.Pool())
}

// serveAPI serves the real handler on a loopback listener. The write side
// is wired but idle: a Kafka producer that is never connected (writes are
// not measured here) and the store for notification checks.
func serveAPI(db *store.Store, opts ...func(*api.Config, *api.Deps)) (baseURL string, stop func(), err error) {
	reg := prometheus.NewRegistry()
	producer, err := kafka.NewProducer(kafka.Config{
		Brokers: []string{"127.0.0.1:9"}, Version: "3.6.0", ClientID: "auditbench", PublishTimeout: time.Second,
	}, nil, zap.NewNop(), reg)
	if err != nil {
		return "", nil, err
	}
	reader, err := query.NewReader(db.Pool(), query.Config{StatementTimeout: statementTimeout, SendTimeout: api.DefaultWriteTimeout, CountCap: countCap})
	if err != nil {
		return "", nil, err
	}
	health := telemetry.NewHealth(map[string]telemetry.Check{"postgresql": db.Ping})
	health.SetReady()
	cfg := api.Config{
		Rules:                 audit.DefaultRules(),
		MaxBodyBytes:          1 << 20,
		MaxBatchBodyBytes:     16 << 20,
		EventsTopic:           "audit.events",
		NotificationsTopic:    "audit.notifications",
		DuplicateCheckTimeout: 2 * time.Second,
		// Past QUERY_MAX_OFFSET (api.DefaultMaxOffset), so that
		// page1000_offset still shows what a deep offset costs: why the
		// API refuses it.
		MaxOffset: (pageDepth - 1) * pageLimit,
	}
	deps := api.Deps{
		Publisher:     kafka.NewPublisher(producer),
		Notifications: db,
		Events:        reader,
		Holds:         db,
		Health:        health,
		Log:           zap.NewNop(),
		Registerer:    reg,
		// Reads are measured here, not access control (see the api
		// stage's auth figures).
		Auth: auth.Disabled{},
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	handler, err := api.NewHandler(cfg, deps)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = producer.Close()
	}, nil
}

// client sends sequential requests over one keep-alive connection.
type client struct {
	base     string
	http     *http.Client
	newConns atomic.Int64
}

func newClient(base string) *client {
	c := &client{base: base, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true, IdleConnTimeout: time.Minute},
	}}
	return c
}

// page is the part of an answer the benchmark looks at.
type page struct {
	Data       []json.RawMessage `json:"data"`
	Pagination struct {
		Total      int64  `json:"total"`
		HasMore    bool   `json:"has_more"`
		TotalExact bool   `json:"total_exact"`
		NextCursor string `json:"next_cursor"`
	} `json:"pagination"`
}

// get fetches /api/v1/audit/events?params and returns the time from
// sending the request to having read the whole body, and the decoded page.
func (c *client) get(ctx context.Context, params url.Values) (time.Duration, page, error) {
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			c.newConns.Add(1)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet,
		c.base+"/api/v1/audit/events?"+params.Encode(), nil)
	if err != nil {
		return 0, page{}, err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, page{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return elapsed, page{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return elapsed, page{}, &httpError{status: resp.StatusCode, body: string(body)}
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		return elapsed, page{}, fmt.Errorf("decode answer: %w", err)
	}
	return elapsed, p, nil
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d: %.300s", e.status, e.body)
}

// queryCase is one measured request shape.
type queryCase struct {
	name   string
	what   string
	target bool
	params func(r *rand.Rand) url.Values
	// iterations replaces --iterations for a case too slow for as many
	// (0: --iterations).
	iterations int
}

func (b *queryBench) measure(ctx context.Context, db *store.Store, base string) error {
	rng := rand.New(rand.NewPCG(b.cfg.Seed, 0xa11d17))
	c := newClient(base)

	// Parameters drawn from the data: existing correlation ids (a sample
	// spread over the whole table) and the types actually stored.
	corrIDs, err := sampleCorrelationIDs(ctx, db, 2000)
	if err != nil {
		return err
	}
	var types []string
	for _, t := range eventgen.Types() {
		types = append(types, t.Name)
	}

	// The cursor of page 999: walk next_cursor from the first page once.
	b.logf("walking %d pages of %d to find the cursor of page %d ...", pageDepth-1, pageLimit, pageDepth-1)
	var walk latencies
	params := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	cursor := ""
	for n := 1; n < pageDepth; n++ {
		if cursor != "" {
			params.Set("cursor", cursor)
		}
		d, p, err := c.get(ctx, params)
		if err != nil {
			return fmt.Errorf("walk to page %d: %w", n, err)
		}
		if p.Pagination.NextCursor == "" || len(p.Data) != pageLimit {
			return fmt.Errorf("walk: page %d has %d events and no next cursor", n, len(p.Data))
		}
		walk = append(walk, d)
		cursor = p.Pagination.NextCursor
	}
	cursor999 := cursor

	cases := []queryCase{
		{name: "correlation_id", what: "correlation_id=<random existing id>", target: true, params: func(r *rand.Rand) url.Values {
			return url.Values{"correlation_id": {corrIDs[r.IntN(len(corrIDs))]}}
		}},
		{name: "event_type_24h", what: "event_type=<random type>&since=24h", target: true, params: func(r *rand.Rand) url.Values {
			return url.Values{"event_type": {types[r.IntN(len(types))]}, "since": {"24h"}}
		}},
		{name: "unfiltered", what: "first page, no filter", params: func(*rand.Rand) url.Values {
			return url.Values{}
		}},
		{name: "page1000_cursor", what: "cursor=<page 999's next_cursor>&limit=50", target: true, params: func(*rand.Rand) url.Values {
			return url.Values{"cursor": {cursor999}, "limit": {strconv.Itoa(pageLimit)}}
		}},
		{name: "page1000_offset", what: "offset=49950&limit=50", params: func(*rand.Rand) url.Values {
			return url.Values{"offset": {strconv.Itoa((pageDepth - 1) * pageLimit)}, "limit": {strconv.Itoa(pageLimit)}}
		}},
		// The detail filter (SPEC 10) has no index: it narrows what a
		// time bound or another filter selects. The generator's
		// event_data.signal takes 1,000 values.
		{name: "detail_24h", what: "detail_key=signal&detail_value=<random>&since=24h", params: func(r *rand.Rand) url.Values {
			return url.Values{"detail_key": {"signal"}, "detail_value": {signalValue(r)}, "since": {"24h"}}
		}},
		{name: "detail_corr", what: "correlation_id=<random existing id>&detail_key=signal&detail_value=<random>", params: func(r *rand.Rand) url.Values {
			return url.Values{"correlation_id": {corrIDs[r.IntN(len(corrIDs))]}, "detail_key": {"signal"}, "detail_value": {signalValue(r)}}
		}},
		{name: "detail_alone", what: "detail_key=signal&detail_value=<random>, no other filter", iterations: 20,
			params: func(r *rand.Rand) url.Values {
				return url.Values{"detail_key": {"signal"}, "detail_value": {signalValue(r)}}
			}},
	}
	for _, qc := range cases {
		if err := b.measureCase(ctx, c, rng, qc); err != nil {
			return err
		}
	}
	b.results = append(b.results,
		Result{Name: "query.cursor_walk_pages_1_999.p50", Value: ms(walk.quantile(0.50)), Unit: "ms",
			Notes: fmt.Sprintf("each page of the walk to page 999 (n=%d, unfiltered, limit 50)", len(walk))},
		Result{Name: "query.cursor_walk_pages_1_999.p99", Value: ms(walk.quantile(0.99)), Unit: "ms"},
	)
	if n := c.newConns.Load(); n != 1 {
		b.logf("note: %d TCP connections were opened (keep-alive expected 1)", n)
	}
	return nil
}

func (b *queryBench) measureCase(ctx context.Context, c *client, rng *rand.Rand, qc queryCase) error {
	iterations, warmup := b.cfg.Iterations, b.cfg.Warmup
	if qc.iterations > 0 {
		iterations, warmup = min(iterations, qc.iterations), min(warmup, 1)
	}
	b.logf("measuring %-16s %s: %d warm-up + %d requests ...", qc.name, qc.what, warmup, iterations)
	for range warmup {
		// A 503 (statement timeout) is measured below, not a broken run.
		var he *httpError
		if _, _, err := c.get(ctx, qc.params(rng)); err != nil && !errors.As(err, &he) {
			return fmt.Errorf("%s warm-up: %w", qc.name, err)
		}
	}
	var (
		lat           latencies
		exact, failed int
		firstErr      error
		rowsSeen      int
	)
	for range iterations {
		d, p, err := c.get(ctx, qc.params(rng))
		var he *httpError
		switch {
		case errors.As(err, &he):
			// A 503 (statement timeout) is an answer too, and a slow one:
			// it counts in the latency and is reported.
			failed++
			if firstErr == nil {
				firstErr = err
			}
		case err != nil:
			return fmt.Errorf("%s: %w", qc.name, err)
		default:
			if p.Pagination.TotalExact {
				exact++
			}
			rowsSeen += len(p.Data)
		}
		lat = append(lat, d)
	}
	ok := iterations - failed
	notes := fmt.Sprintf("%s; total_exact=%s; %.1f events/answer", qc.what, exactness(exact, ok), float64(rowsSeen)/float64(max(ok, 1)))
	if failed > 0 {
		notes += fmt.Sprintf("; %d/%d FAILED (%v)", failed, iterations, firstErr)
	}
	var target *Target
	if qc.target {
		target = Below(p99Target)
	}
	name := "query." + qc.name
	b.results = append(b.results,
		Result{Name: name + ".p50", Value: ms(lat.quantile(0.50)), Unit: "ms", Notes: fmt.Sprintf("n=%d", len(lat))},
		Result{Name: name + ".p99", Value: ms(lat.quantile(0.99)), Unit: "ms", Target: target, Notes: notes},
		Result{Name: name + ".max", Value: ms(lat.max()), Unit: "ms"},
	)
	if failed > 0 && target == nil {
		// Failures are a miss whatever the latency.
		b.results[len(b.results)-2].Target = Below(0)
	}
	return nil
}

// signalValue is one of the generator's event_data.signal values.
func signalValue(r *rand.Rand) string { return "sig-" + strconv.Itoa(r.IntN(1000)) }

func exactness(exact, n int) string {
	switch exact {
	case n:
		return "true (all)"
	case 0:
		return "false (all)"
	}
	return fmt.Sprintf("true in %d of %d", exact, n)
}

// sampleCorrelationIDs returns the distinct correlation ids of about n
// rows sampled at random (by page) over the whole table, every partition
// alike.
func sampleCorrelationIDs(ctx context.Context, db *store.Store, n int) ([]string, error) {
	var total int64
	if err := db.Pool().QueryRow(ctx, "SELECT count(*) FROM audit_event_ids").Scan(&total); err != nil {
		return nil, err
	}
	pct := min(100, max(0.0001, float64(n)*100/float64(max(total, 1))))
	rows, err := db.Pool().Query(ctx, fmt.Sprintf(
		`SELECT DISTINCT correlation_id FROM audit_events TABLESAMPLE SYSTEM (%f)`, pct))
	if err != nil {
		return nil, fmt.Errorf("sample correlation ids: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sample correlation ids: %w", err)
	}
	if len(ids) == 0 {
		return nil, errors.New("sample correlation ids: none found")
	}
	return ids, nil
}
