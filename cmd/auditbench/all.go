package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const allSynopsis = `
Every stage in sequence on this machine (make bench): api, writer, lag,
query; one table at the end, merged into bench/results/latest.json. The
default sizes keep the run near 5 minutes on 2 cores; --long runs bigger
ones (api 30 s per case, writer 500,000 rows, lag 5 min, query 10,000,000
rows). Each size has its own flag for smaller (test) or custom runs.`

func runAll(ctx context.Context, args []string, out io.Writer) ([]Result, Env, error) {
	fs, outPath := newFlagSet("all", allSynopsis, out)
	long := fs.Bool("long", false, "longer runs (see above)")
	var api apiConfig
	api.flags(fs, "api-")
	writerRows := fs.Int("writer-rows", 100_000, "writer stage: events in the pre-filled topic")
	lagDuration := fs.Duration("lag-duration", 60*time.Second, "lag stage: sustained load")
	queryRows := fs.Int64("query-rows", 1_000_000, "query stage: generated events (>= 50,000)")
	queryIterations := fs.Int("query-iterations", 300, "query stage: measured requests per case")
	stages := fs.String("stages", "api,writer,lag,query", "stages to run, comma-separated")
	if err := fs.Parse(args); err != nil {
		return nil, Env{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *long {
		if !set["api-duration"] {
			api.duration = 30 * time.Second
		}
		if !set["writer-rows"] {
			*writerRows = 500_000
		}
		if !set["lag-duration"] {
			*lagDuration = 5 * time.Minute
		}
		if !set["query-rows"] {
			*queryRows = 10_000_000
		}
		if !set["query-iterations"] {
			*queryIterations = 500
		}
	}
	env := Env{OutPath: *outPath, Command: strings.TrimSpace("all " + strings.Join(args, " ")), Params: map[string]string{}}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		env.Params["loadavg_at_start"] = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	env.Params["cpus"] = strconv.Itoa(runtime.NumCPU())
	logf := logger(out)
	defer removeBinaries()
	begin := time.Now()
	var results []Result
	want := map[string]bool{}
	for s := range strings.SplitSeq(*stages, ",") {
		want[strings.TrimSpace(s)] = true
	}
	stageTime := func(name string, t time.Time) {
		results = append(results, Result{Name: "all.stage_time." + name, Value: time.Since(t).Seconds(), Unit: "s", Notes: "wall time of the stage, set-up included"})
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			env.Params["loadavg_after_"+name] = strings.Join(strings.Fields(string(la))[:3], " ")
		}
	}
	maxRate := 0.0
	if want["api"] {
		t := time.Now()
		logf("=== api")
		r, rate, err := apiStage(ctx, api, logf, env.Params)
		results = append(results, r...)
		if err != nil {
			return results, env, fmt.Errorf("api: %w", err)
		}
		maxRate = rate
		stageTime("api", t)
	}
	if want["writer"] {
		t := time.Now()
		logf("=== writer")
		r, err := writerStage(ctx, writerConfig{rows: *writerRows}, logf, env.Params)
		results = append(results, r...)
		if err != nil {
			return results, env, fmt.Errorf("writer: %w", err)
		}
		stageTime("writer", t)
	}
	if want["lag"] {
		t := time.Now()
		logf("=== lag")
		r, err := lagStage(ctx, lagConfig{duration: *lagDuration, ramp: 5 * time.Second, maxRate: maxRate}, logf, env.Params)
		results = append(results, r...)
		if err != nil {
			return results, env, fmt.Errorf("lag: %w", err)
		}
		stageTime("lag", t)
	}
	if want["query"] {
		t := time.Now()
		logf("=== query")
		qargs := []string{"--rows", strconv.FormatInt(*queryRows, 10), "--iterations", strconv.Itoa(*queryIterations),
			"--chunk", strconv.FormatInt(min(*queryRows, 500_000), 10), "--out", ""}
		r, qenv, err := runQuery(ctx, qargs, out)
		results = append(results, r...)
		for k, v := range qenv.Params {
			env.Params["query_"+k] = v
		}
		if err != nil {
			return results, env, fmt.Errorf("query: %w", err)
		}
		stageTime("query", t)
	}
	results = append(results, Result{Name: "all.total_time", Value: time.Since(begin).Seconds(), Unit: "s",
		Notes: "load average at start " + env.Params["loadavg_at_start"] + " on " + env.Params["cpus"] + " CPUs (other work on the machine skews every figure; ratios within a stage less)"})
	return results, env, nil
}
