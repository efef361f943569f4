package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/auditstream/auditstream/internal/eventgen"
	"github.com/auditstream/auditstream/internal/testenv"
)

const apiSynopsis = `
Write API throughput (issue items 1 and 2) over real HTTP: the real ingest-api
binary (go build, run as a process against the stack's Kafka and PostgreSQL,
alone: no writer competes for the cores) as a user runs it by default
(LOG_LEVEL=info with the access log on, access control on with an API key
from AUTH_TOKENS_FILE, submitted_by signed with SOURCE_KEYS_FILE, acks=all
idempotent) and, as the baseline, a bare gin JSON handler (ShouldBindJSON
into a map, answer 201 JSON) run as its own process. A Go load generator
runs --concurrency keep-alive clients back to back for --duration per case,
after --warmup:

  bare_gin     POST of one event to the bare handler
  single       POST /api/v1/audit/events with the API key
  batch100     POST /api/v1/audit/events/batch, 100 events
  batch1000    POST /api/v1/audit/events/batch, 1,000 events
  single_noauth single, against a second ingest-api with AUTH_DISABLED
  single_jwt   single, against a third with a JWT of an OIDC issuer
               served by auditbench over TLS (one token per client, reused
               as real clients do until it expires)
  traced.*     single and batch100 again, against an ingest-api with
               tracing on (OTEL_EXPORTER_OTLP_ENDPOINT), exporting every
               span to a local OTLP/HTTP sink in this process; the ratios
               to the untraced cases are the cost of tracing

Rate limits are off in every case (one principal sends all the load).

Targets: single req/s >= 0.6 x bare_gin req/s; single and single_jwt
req/s >= 0.9 x single_noauth req/s (access control costs under 10 %),
same run.`

// apiConfig are the flags of the api stage (also of all, prefixed api-).
type apiConfig struct {
	Duration    time.Duration `default:"10s" help:"Measured load per case."`
	Warmup      time.Duration `default:"1s" help:"Unmeasured load before each case."`
	Concurrency int           `default:"64" help:"Concurrent keep-alive clients (connections)."`
	Rounds      int           `default:"3" help:"Rounds of bare_gin and single, alternating which goes first; the medians are reported."`
	SingleOnly  bool          `help:"Measure only bare_gin and single (to compare two builds quickly)."`
	Profile     string        `placeholder:"FILE" help:"Write a CPU profile of ingest-api over the single case to FILE (PPROF_ENABLED; go tool pprof FILE)."`
}

type apiCmd struct {
	apiConfig `embed:""`
}

func (apiCmd) Help() string { return apiSynopsis }

func (c *apiCmd) Run(r *run) error {
	results, _, err := apiStage(r.ctx, c.apiConfig, r.logf, r.env.Params)
	return r.record(results, err)
}

// measureCase runs one closed-loop case of a stage (per events a request)
// and logs its figures; a case in which no request was accepted fails.
func measureCase(ctx context.Context, cfg apiConfig, logf func(string, ...any), stage, name, url, authorization string,
	per int, body func(w, i int) []byte) (loadResult, error) {
	logf("%s %-9s %d clients, %s warm-up + %s ...", stage, name, cfg.Concurrency, cfg.Warmup, cfg.Duration)
	r := closedLoop(ctx, url, authorization, cfg.Concurrency, cfg.Warmup, cfg.Duration, body)
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.requests == 0 {
		return r, fmt.Errorf("%s %s: no request succeeded (%d errors, first: %s)", stage, name, r.errors, r.firstErr)
	}
	logf("%s %-9s %.0f req/s, %.0f events/s, p50 %.2f ms, p99 %.2f ms, %d errors",
		stage, name, r.rate(), r.rate()*float64(per), ms(r.lat.quantile(0.5)), ms(r.lat.quantile(0.99)), r.errors)
	return r, nil
}

// perRequest is a server's CPU time over a case per request answered, in
// microseconds.
func perRequest(cpu time.Duration, r loadResult) float64 {
	return float64(cpu.Microseconds()) / float64(max(r.completed, 1))
}

// medianLoad returns the run with the median rate (the lower middle one
// of an even count).
func medianLoad(runs []loadResult) loadResult {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b loadResult) int { return cmp.Compare(a.rate(), b.rate()) })
	return s[(len(s)-1)/2]
}

// caseNote is the notes of a case's main figure: what it measured and how.
func caseNote(cfg apiConfig, r loadResult, what string) string {
	n := fmt.Sprintf("%s; %d keep-alive clients, %s, n=%d", what, cfg.Concurrency, cfg.Duration, r.requests)
	if r.errors > 0 {
		n += fmt.Sprintf("; %d not 201 or 202 (%s)", r.errors, r.firstErr)
	}
	return n
}

func logger(out io.Writer) func(string, ...any) {
	return func(format string, a ...any) {
		fmt.Fprintf(out, time.Now().Format("15:04:05 ")+format+"\n", a...)
	}
}

// apiStage measures the write API and returns its results and the
// single-event rate (req/s), the maximum the lag stage halves.
func apiStage(ctx context.Context, cfg apiConfig, logf func(string, ...any), params map[string]string) ([]Result, float64, error) {
	if cfg.Duration <= 0 || cfg.Concurrency < 1 || cfg.Rounds < 1 {
		return nil, 0, fmt.Errorf("api: need --duration > 0, --concurrency >= 1 and --rounds >= 1")
	}
	params["api_duration"] = cfg.Duration.String()
	params["api_concurrency"] = strconv.Itoa(cfg.Concurrency)
	st, err := startStack(ctx, logf)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	params["stack"] = st.describe()
	dbURL, _, err := st.freshDB(ctx, "api")
	if err != nil {
		return nil, 0, err
	}

	// The baseline, as a process of its own like the API.
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	ginAddr, err := testenv.FreeAddr()
	if err != nil {
		return nil, 0, err
	}
	gp, err := startProc("bare-gin", self, nil, bareGinEnv+"="+ginAddr)
	if err != nil {
		return nil, 0, err
	}
	defer gp.stop()
	if err := waitHTTP(ctx, "http://"+ginAddr+"/health", gp, 30*time.Second); err != nil {
		return nil, 0, err
	}
	var apiEnv []string
	if cfg.Profile != "" {
		apiEnv = []string{"AUTH_TOKENS_FILE=" + filepath.Join(st.keysDir, "tokens.yaml"), "PPROF_ENABLED=true"}
	}
	ap, base, err := st.startIngestAPI(ctx, dbURL, apiEnv, logf)
	if err != nil {
		return nil, 0, err
	}
	defer ap.stop()

	events := eventgen.Events(1000, eventgen.Options{Seed: 1})
	single := make([][]byte, len(events))
	for i := range events {
		single[i] = events[i].AppendJSON(nil)
	}
	batch := func(n int) []byte {
		raws := make([]json.RawMessage, n)
		for i := range raws {
			raws[i] = single[i%len(single)]
		}
		b, _ := json.Marshal(raws)
		return b
	}
	b100, b1000 := batch(100), batch(1000)

	var results []Result
	run := func(name, url, authorization string, per int, body func(w, i int) []byte) (loadResult, error) {
		return measureCase(ctx, cfg, logf, "api", name, url, authorization, per, body)
	}
	note := func(r loadResult, what string) string { return caseNote(cfg, r, what) }
	latRows := func(prefix string, r loadResult) []Result {
		return []Result{
			{Name: prefix + ".p50", Value: ms(r.lat.quantile(0.5)), Unit: "ms", Notes: "request sent to body read"},
			{Name: prefix + ".p99", Value: ms(r.lat.quantile(0.99)), Unit: "ms"},
		}
	}
	// bare_gin and single side by side, --rounds times, alternating which
	// goes first: one pair swings by a tenth on two shared cores.
	profiled := make(chan error, 1)
	var ginRuns, singleRuns []loadResult
	var ratios, ginCPU, singleCPU []float64
	singleBody := func(w, i int) []byte { return single[(w*7919+i)%len(single)] }
	for round := range cfg.Rounds {
		bare := func() error {
			cpu0 := procCPU(gp.cmd.Process.Pid)
			r, err := run("bare_gin", "http://"+ginAddr+"/api/v1/audit/events", "", 1, singleBody)
			ginCPU = append(ginCPU, perRequest(procCPU(gp.cmd.Process.Pid)-cpu0, r))
			ginRuns = append(ginRuns, r)
			return err
		}
		api := func() error {
			if round == 0 && cfg.Profile != "" {
				go func() { profiled <- cpuProfile(ctx, ap, cfg.Warmup, cfg.Duration, cfg.Profile) }()
			} else if round == 0 {
				profiled <- nil
			}
			cpu0 := procCPU(ap.cmd.Process.Pid)
			r, err := run("single", base+"/api/v1/audit/events", st.authorization(), 1, singleBody)
			singleCPU = append(singleCPU, perRequest(procCPU(ap.cmd.Process.Pid)-cpu0, r))
			singleRuns = append(singleRuns, r)
			if round == 0 {
				if perr := <-profiled; err == nil {
					err = perr
				}
			}
			return err
		}
		first, second := bare, api
		if round%2 == 1 {
			first, second = api, bare
		}
		if err := first(); err != nil {
			return results, 0, err
		}
		if err := second(); err != nil {
			return results, 0, err
		}
		ratios = append(ratios, singleRuns[round].rate()/ginRuns[round].rate())
		logf("api round %d: single / bare_gin %.3f", round+1, ratios[round])
	}
	ginRes, sRes := medianLoad(ginRuns), medianLoad(singleRuns)
	rounds := fmt.Sprintf("median of %d rounds", cfg.Rounds)
	results = append(results, Result{Name: "api.bare_gin.req_per_s", Value: ginRes.rate(), Unit: "req/s",
		Notes: note(ginRes, "BASELINE: bare gin handler process (ShouldBindJSON into a map, 201 JSON), same events, "+rounds)})
	results = append(results, latRows("api.bare_gin", ginRes)...)
	var errRate *Target
	var singleErrors int64
	firstErr := ""
	for _, r := range singleRuns {
		if r.errors > 0 {
			errRate = Below(1)
			singleErrors += r.errors
			firstErr = cmp.Or(firstErr, r.firstErr)
		}
	}
	results = append(results, Result{Name: "api.single.req_per_s", Value: sRes.rate(), Unit: "req/s",
		Notes: note(sRes, "real ingest-api process, defaults (access log, API key, signed submitted_by), POST /api/v1/audit/events, Kafka acks=all, "+rounds+"; vs api.bare_gin.req_per_s")})
	results = append(results, latRows("api.single", sRes)...)
	results = append(results, Result{Name: "api.ratio.single_vs_bare_gin", Value: median(ratios), Unit: "x",
		Target: AtLeast(0.6), Notes: "api.single.req_per_s / api.bare_gin.req_per_s of the same round, median of " + formatRatios(ratios)})
	results = append(results,
		Result{Name: "api.bare_gin.cpu_per_req", Value: median(ginCPU), Unit: "us/req",
			Notes: "the bare handler process's CPU over the case (warm-up included) / requests answered, " + rounds},
		Result{Name: "api.single.cpu_per_req", Value: median(singleCPU), Unit: "us/req",
			Notes: "ingest-api's CPU over the case (warm-up included) / requests answered, " + rounds + "; Kafka's broker runs in auditbench and is not counted"},
		Result{Name: "api.ratio.cpu_bare_gin_vs_single", Value: median(ginCPU) / median(singleCPU), Unit: "x",
			Notes: "api.bare_gin.cpu_per_req / api.single.cpu_per_req: the target's ratio in CPU, which depends less on how the 2 cores are shared"})
	if errRate != nil {
		results = append(results, Result{Name: "api.single.errors", Value: float64(singleErrors), Unit: "req", Target: errRate, Notes: firstErr})
	}
	if cfg.SingleOnly {
		return results, sRes.rate(), nil
	}
	var b100Res loadResult
	for _, c := range []struct {
		n    int
		body []byte
	}{{100, b100}, {1000, b1000}} {
		name := fmt.Sprintf("batch%d", c.n)
		r, err := run(name, base+"/api/v1/audit/events/batch", st.authorization(), c.n, func(int, int) []byte { return c.body })
		if err != nil {
			return results, 0, err
		}
		if c.n == 100 {
			b100Res = r
		}
		eps := r.rate() * float64(c.n)
		results = append(results,
			Result{Name: "api." + name + ".events_per_s", Value: eps, Unit: "events/s",
				Notes: note(r, fmt.Sprintf("real ingest-api, POST /events/batch of %d (%d bytes); %.1fx api.single events/s", c.n, len(c.body), eps/sRes.rate()))},
			Result{Name: "api." + name + ".p99", Value: ms(r.lat.quantile(0.99)), Unit: "ms", Notes: "per batch request"},
		)
		if r.errors > 0 {
			results = append(results, Result{Name: "api." + name + ".errors", Value: float64(r.errors), Unit: "req", Target: Below(1), Notes: r.firstErr})
		}
	}
	authResults, err := authCases(ctx, st, dbURL, logf, sRes, run, func(w, i int) []byte { return single[(w*7919+i)%len(single)] }, note)
	results = append(results, authResults...)
	if err != nil {
		return results, 0, err
	}
	traced, err := tracedCases(ctx, st, dbURL, logf, run, note, single, b100, sRes, b100Res)
	results = append(results, traced...)
	if err != nil {
		return results, 0, err
	}
	if err := ap.stop(); err != nil {
		return results, 0, err
	}
	_ = gp.stop()
	results = append(results, procResults("api", ap, "all four cases (the API ran for every case)")...)
	results = append(results, procResults("api", gp, "bare gin baseline")...)
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		params["loadavg_after_api"] = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	return results, sRes.rate(), nil
}

// authCases measures single-event POSTs without access control and with a
// JWT, each against an ingest-api of its own, next to the single case (an
// API key, sRes, same run).
func authCases(ctx context.Context, st *stack, dbURL string, logf func(string, ...any), sRes loadResult,
	run func(name, url, authorization string, per int, body func(w, i int) []byte) (loadResult, error),
	body func(w, i int) []byte, note func(loadResult, string) string) ([]Result, error) {
	creds, err := newBenchCredentials()
	if err != nil {
		return nil, err
	}
	defer creds.Close()
	measure := func(name, authorization string, env []string) (loadResult, error) {
		p, base, err := st.startIngestAPI(ctx, dbURL, env, logf)
		if err != nil {
			return loadResult{}, err
		}
		defer p.stop()
		r, err := run(name, base+"/api/v1/audit/events", authorization, 1, body)
		if err != nil {
			return r, err
		}
		return r, p.stop()
	}
	noAuth, err := measure("single_noauth", "", []string{"AUTH_DISABLED=true"})
	if err != nil {
		return nil, err
	}
	jwt, err := measure("single_jwt", "Bearer "+creds.jwt, creds.env)
	if err != nil {
		return nil, err
	}
	results := []Result{
		{Name: "api.single_noauth.req_per_s", Value: noAuth.rate(), Unit: "req/s",
			Notes: note(noAuth, "real ingest-api with AUTH_DISABLED=true, POST /api/v1/audit/events")},
		{Name: "api.ratio.single_vs_noauth", Value: sRes.rate() / noAuth.rate(), Unit: "x", Target: AtLeast(0.9),
			Notes: "api.single.req_per_s (API key from AUTH_TOKENS_FILE: SHA-256, constant-time look-up) / api.single_noauth.req_per_s, same run: access control costs under 10 %"},
		{Name: "api.single_jwt.req_per_s", Value: jwt.rate(), Unit: "req/s",
			Notes: note(jwt, "real ingest-api with access control on, POST /api/v1/audit/events, ES256 JWT of an OIDC issuer (discovery + JWKS over TLS), verified once, then cached until exp")},
		{Name: "api.ratio.single_jwt_vs_noauth", Value: jwt.rate() / noAuth.rate(), Unit: "x", Target: AtLeast(0.9),
			Notes: "api.single_jwt.req_per_s / api.single_noauth.req_per_s, same run"},
	}
	for _, c := range []struct {
		name string
		r    loadResult
	}{{"single_noauth", noAuth}, {"single_jwt", jwt}} {
		if c.r.errors > 0 {
			results = append(results, Result{Name: "api." + c.name + ".errors", Value: float64(c.r.errors), Unit: "req", Target: Below(1), Notes: c.r.firstErr})
		}
	}
	return results, nil
}

// tracedCases runs the single and batch100 cases against an ingest-api
// with tracing on, exporting to a sink, and reports them next to the
// untraced figures of the same run (sRes, b100Res).
func tracedCases(ctx context.Context, st *stack, dbURL string, logf func(string, ...any),
	run func(name, url, authorization string, per int, body func(w, i int) []byte) (loadResult, error),
	note func(loadResult, string) string, single [][]byte, b100 []byte, sRes, b100Res loadResult,
) ([]Result, error) {
	// The sink reads and drops the exports: decoding them would take CPU
	// from the measured API on this machine.
	sink := testenv.StartOTLPReceiver(false)
	defer sink.Close()
	tp, base, err := st.startIngestAPI(ctx, dbURL,
		[]string{"AUTH_TOKENS_FILE=" + filepath.Join(st.keysDir, "tokens.yaml"), "OTEL_EXPORTER_OTLP_ENDPOINT=" + sink.URL(), "OTEL_SERVICE_NAME=ingest-api-bench"}, logf)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tp.stop() }()
	const what = "ingest-api with tracing on (OTLP/HTTP to a local sink; spans past the SDK's batch queue are dropped, as they would be in production)"
	sr, err := run("traced.single", base+"/api/v1/audit/events", st.authorization(), 1, func(w, i int) []byte { return single[(w*7919+i)%len(single)] })
	if err != nil {
		return nil, err
	}
	br, err := run("traced.batch100", base+"/api/v1/audit/events/batch", st.authorization(), 100, func(int, int) []byte { return b100 })
	if err != nil {
		return nil, err
	}
	if err := tp.stop(); err != nil {
		return nil, err
	}
	exports, bytes := sink.Received()
	return []Result{
		{Name: "api.traced.single.req_per_s", Value: sr.rate(), Unit: "req/s", Notes: note(sr, what+", POST /api/v1/audit/events")},
		{Name: "api.traced.single.p99", Value: ms(sr.lat.quantile(0.99)), Unit: "ms"},
		{Name: "api.traced.ratio.single", Value: sr.rate() / sRes.rate(), Unit: "x", Notes: "api.traced.single.req_per_s / api.single.req_per_s (same run)"},
		{Name: "api.traced.batch100.events_per_s", Value: br.rate() * 100, Unit: "events/s", Notes: note(br, what+", POST /events/batch of 100")},
		{Name: "api.traced.ratio.batch100", Value: br.rate() / b100Res.rate(), Unit: "x", Notes: "api.traced.batch100.events_per_s / api.batch100.events_per_s (same run)"},
		{Name: "api.traced.exported_bytes", Value: float64(bytes) / (1 << 20), Unit: "MiB", Notes: fmt.Sprintf("OTLP bodies the sink received in %d exports", exports)},
	}, nil
}

// cpuProfile waits out warmup, then takes a CPU profile of p over the
// measured part of a case (its last second left out) into file.
func cpuProfile(ctx context.Context, p *proc, warmup, duration time.Duration, file string) error {
	sleepCtx(ctx, warmup)
	secs := max(int((duration - time.Second).Seconds()), 1)
	return fetchProfile(p, fmt.Sprintf("profile?seconds=%d", secs), time.Duration(secs+30)*time.Second, file)
}

// fetchProfile saves p's /debug/pprof/<what> into file.
func fetchProfile(p *proc, what string, timeout time.Duration, file string) error {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(p.ops + "/debug/pprof/" + what)
	if err != nil {
		return fmt.Errorf("profile %s: %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", p.name, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("profile %s: %w", p.name, err)
	}
	return f.Close()
}

// bareGinEnv, when set to an address, makes this binary serve the bare gin
// baseline there instead of running a command (see main).
const bareGinEnv = "AUDITBENCH_BARE_GIN_ADDR"

// serveBareGin serves the baseline handler: the same route, JSON decoded
// into a map and a 201 JSON answer, nothing else.
func serveBareGin(addr string) error {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.POST("/api/v1/audit/events", func(c *gin.Context) {
		var body map[string]any
		if err := c.ShouldBindJSON(&body); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusCreated, gin.H{"event_id": "0190a0a0-0000-7000-8000-000000000000", "message": "audit event accepted"})
	})
	srv := &http.Server{Addr: addr, Handler: r, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}
