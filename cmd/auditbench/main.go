// Command auditbench is auditstream's benchmark driver. Each stage of the
// pipeline is a subcommand that measures one thing against the real code
// (real HTTP server, real PostgreSQL) and returns results; every subcommand
// shares the result table printed at the end and the JSON file the results
// are merged into (bench/results/latest.json, keyed by benchmark name), so
// numbers from different stages and runs sit side by side.
//
//	go run ./cmd/auditbench query --rows 10000000 --iterations 500
//	go run ./cmd/auditbench query --help
//
// PostgreSQL is DATABASE_URL when set, else a throwaway cluster started
// through internal/testenv and removed at exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
)

// cli is the command line: one subcommand per stage, each with its own
// flags, and --out for all. A new stage is a field here with a Run(*run)
// method; it gets the shared table and JSON output for free.
type cli struct {
	Out string `default:"${results}" help:"JSON file the results are merged into (\"\" to skip)."`

	API    apiCmd    `cmd:"" name:"api" help:"Single-event and batch POST throughput of the real ingest-api, next to a bare gin handler."`
	Writer writerCmd `cmd:"" help:"Kafka -> PostgreSQL drain rate of the real writer, next to raw pgx CopyFrom of the same rows."`
	Lag    lagCmd    `cmd:"" help:"Accepted -> visible lag at half the maximum rate, and the writer's RSS over the run."`
	All    allCmd    `cmd:"" help:"Every stage in sequence (make bench): one table, bench/results/latest.json."`
	Query  queryCmd  `cmd:"" help:"Read latency of GET /api/v1/audit/events over real HTTP against a populated PostgreSQL."`
	Spool  spoolCmd  `cmd:"" help:"Single POST req/s answered from the local spool (broker down) next to Kafka up, and the drain rate once the broker is back."`
	Verify verifyCmd `cmd:"" help:"verify-chain and export time of one long chain over real HTTP."`
}

const description = `auditstream benchmark driver. Every command prints a result table and
merges its results into bench/results/latest.json (keyed by benchmark name;
--out changes the file, --out "" skips it). PostgreSQL is $DATABASE_URL when
set, else a throwaway cluster from the machine's PostgreSQL binaries.`

// run is what a stage's Run is given, and fills in: its results and the
// parameters that describe the run.
type run struct {
	ctx     context.Context
	out     io.Writer
	env     Env
	given   map[string]bool // flags given on the command line
	results []Result
}

func (r *run) logf(format string, a ...any) { logger(r.out)(format, a...) }

// record keeps a stage's results (also those measured before it failed).
func (r *run) record(results []Result, err error) error {
	r.results = results
	return err
}

func main() {
	if addr := os.Getenv(bareGinEnv); addr != "" {
		// The api stage's baseline process (this binary, re-executed).
		if err := serveBareGin(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs the command line args and returns the exit status: 0 (also
// after --help), 1 when a stage fails, 2 for a usage error.
func realMain(args []string, stdout, stderr io.Writer) int {
	kctx, r, code := parse(args, stdout, stderr)
	if kctx == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r.ctx = ctx
	// The binaries a stage built (go build) live only as long as the run.
	defer removeBinaries()
	name := kctx.Command()
	if err := kctx.Run(r); err != nil {
		// Print what was measured before the failure: a long run should
		// not lose it.
		if len(r.results) > 0 {
			PrintTable(stdout, r.results)
		}
		fmt.Fprintf(stderr, "auditbench %s: %v\n", name, err)
		return 1
	}
	fmt.Fprintln(stdout)
	PrintTable(stdout, r.results)
	if r.env.OutPath != "" {
		if err := MergeJSON(r.env.OutPath, r.results, r.env); err != nil {
			fmt.Fprintf(stderr, "auditbench %s: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(stdout, "\nresults merged into %s\n", r.env.OutPath)
	}
	if Missed(r.results) {
		// A missed target is a finding, not a failure of the tool; the
		// exit status stays 0 so scripts keep the output. It is said
		// plainly, though.
		fmt.Fprintln(stdout, "\nsome targets were MISSED (see the status column)")
	}
	return 0
}

// parse reads the command line into a run of the selected stage; a nil
// context means there is nothing to run, and code says why (0 after --help,
// 2 for a usage error).
func parse(args []string, stdout, stderr io.Writer) (_ *kong.Context, _ *run, code int) {
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("auditbench"),
		kong.Description(description),
		kong.Vars{"results": defaultResultsPath()},
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "auditbench: %v\n", err)
		return nil, nil, 1
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		return nil, nil, exit // --help
	}
	if err != nil {
		fmt.Fprintf(stderr, "auditbench: %v\n\n", err)
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			_ = pe.Context.PrintUsage(true)
		}
		return nil, nil, 2
	}
	r := &run{out: stdout, env: Env{OutPath: c.Out, Command: strings.Join(args, " "), Params: map[string]string{}},
		given: map[string]bool{}}
	for _, p := range kctx.Path {
		if p.Flag != nil {
			r.given[p.Flag.Name] = true
		}
	}
	return kctx, r, 0
}
