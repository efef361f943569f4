package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const allSynopsis = `
Every stage in sequence on this machine (make bench): api, writer, lag,
query, spool (with the api stage's durations), verify; one table at the end, merged into bench/results/latest.json. The
default sizes keep the run near 5 minutes on 2 cores; --long runs bigger
ones (api 30 s per case, writer 500,000 rows (the backlog stays 1,000,000), lag 5 min, query 10,000,000
rows, a chain of 1,000,000 events). Each size has its own flag for smaller
(test) or custom runs.`

type allCmd struct {
	Long        bool          `help:"Longer runs (see above); a size given as a flag is kept."`
	API         apiConfig     `embed:"" prefix:"api-"`
	Writer      writerConfig  `embed:"" prefix:"writer-"`
	LagDuration time.Duration `default:"60s" help:"Lag stage: sustained load."`
	Query       queryConfig   `embed:"" prefix:"query-" set:"query_rows=1000000" set:"query_iterations=300"`
	Verify      verifyConfig  `embed:"" prefix:"verify-"`
	Stages      []string      `default:"api,writer,lag,query,spool,verify" help:"Stages to run, comma-separated."`
}

func (allCmd) Help() string { return allSynopsis }

// long applies --long to every size not given as a flag.
func (c *allCmd) long(given map[string]bool) {
	if !c.Long {
		return
	}
	if !given["api-duration"] {
		c.API.Duration = 30 * time.Second
	}
	if !given["writer-rows"] {
		c.Writer.Rows = 500_000
	}
	if !given["lag-duration"] {
		c.LagDuration = 5 * time.Minute
	}
	if !given["query-rows"] {
		c.Query.Rows = 10_000_000
	}
	if !given["query-iterations"] {
		c.Query.Iterations = 500
	}
	if !given["verify-events"] {
		c.Verify.Events = 1_000_000
	}
}

func (c *allCmd) Run(r *run) error {
	c.long(r.given)
	env := &r.env
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		env.Params["loadavg_at_start"] = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	env.Params["cpus"] = strconv.Itoa(runtime.NumCPU())
	ctx, logf := r.ctx, r.logf
	begin := time.Now()
	want := map[string]bool{}
	for _, s := range c.Stages {
		want[strings.TrimSpace(s)] = true
	}
	stageTime := func(name string, t time.Time) {
		r.results = append(r.results, Result{Name: "all.stage_time." + name, Value: time.Since(t).Seconds(), Unit: "s", Notes: "wall time of the stage, set-up included"})
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			env.Params["loadavg_after_"+name] = strings.Join(strings.Fields(string(la))[:3], " ")
		}
	}
	maxRate := 0.0
	if want["api"] {
		t := time.Now()
		logf("=== api")
		res, rate, err := apiStage(ctx, c.API, logf, env.Params)
		r.results = append(r.results, res...)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		maxRate = rate
		stageTime("api", t)
	}
	if want["writer"] {
		t := time.Now()
		logf("=== writer")
		res, err := writerStage(ctx, c.Writer, logf, env.Params)
		r.results = append(r.results, res...)
		if err != nil {
			return fmt.Errorf("writer: %w", err)
		}
		stageTime("writer", t)
	}
	if want["lag"] {
		t := time.Now()
		logf("=== lag")
		res, err := lagStage(ctx, lagConfig{Duration: c.LagDuration, Ramp: 5 * time.Second, maxRate: maxRate}, logf, env.Params)
		r.results = append(r.results, res...)
		if err != nil {
			return fmt.Errorf("lag: %w", err)
		}
		stageTime("lag", t)
	}
	if want["query"] {
		t := time.Now()
		logf("=== query")
		params := map[string]string{}
		res, err := queryStage(ctx, c.Query, r.out, params)
		r.results = append(r.results, res...)
		for k, v := range params {
			env.Params["query_"+k] = v
		}
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		stageTime("query", t)
	}
	if want["spool"] {
		t := time.Now()
		logf("=== spool")
		res, err := spoolStage(ctx, c.API, logf, env.Params)
		r.results = append(r.results, res...)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		stageTime("spool", t)
	}
	if want["verify"] {
		t := time.Now()
		logf("=== verify")
		res, err := verifyStage(ctx, c.Verify, logf, env.Params)
		r.results = append(r.results, res...)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		stageTime("verify", t)
	}
	r.results = append(r.results, Result{Name: "all.total_time", Value: time.Since(begin).Seconds(), Unit: "s",
		Notes: "load average at start " + env.Params["loadavg_at_start"] + " on " + env.Params["cpus"] + " CPUs (other work on the machine skews every figure; ratios within a stage less)"})
	return nil
}
