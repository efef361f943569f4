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
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one benchmark stage. run parses its own flags from args and
// returns the results to print and record.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) ([]Result, Env, error)
}

// commands lists the stages. Add new ones here (ingest, writer drain,
// pipeline lag, ...); each gets the shared table and JSON output for free.
var commands = map[string]command{
	"api":    {summary: "single-event and batch POST throughput of the real ingest-api, next to a bare gin handler", run: runAPI},
	"writer": {summary: "Kafka -> PostgreSQL drain rate of the real writer, next to raw pgx CopyFrom of the same rows", run: runWriter},
	"lag":    {summary: "accepted -> visible lag at half the maximum rate, and the writer's RSS over the run", run: runLag},
	"all":    {summary: "every stage in sequence (make bench): one table, bench/results/latest.json", run: runAll},
	"query":  {summary: "read latency of GET /api/v1/audit/events over real HTTP against a populated PostgreSQL", run: runQuery},
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

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "auditbench: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	results, env, err := cmd.run(ctx, args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		// Print what was measured before the failure: a long run should
		// not lose it.
		if len(results) > 0 {
			PrintTable(stdout, results)
		}
		fmt.Fprintf(stderr, "auditbench %s: %v\n", args[0], err)
		return 1
	}
	fmt.Fprintln(stdout)
	PrintTable(stdout, results)
	if env.OutPath != "" {
		if err := MergeJSON(env.OutPath, results, env); err != nil {
			fmt.Fprintf(stderr, "auditbench %s: %v\n", args[0], err)
			return 1
		}
		fmt.Fprintf(stdout, "\nresults merged into %s\n", env.OutPath)
	}
	if Missed(results) {
		// A missed target is a finding, not a failure of the tool; the
		// exit status stays 0 so scripts keep the output. It is said
		// plainly, though.
		fmt.Fprintln(stdout, "\nsome targets were MISSED (see the status column)")
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `auditbench: auditstream benchmark driver

Usage:
  go run ./cmd/auditbench <command> [flags]
  go run ./cmd/auditbench <command> --help

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, `
Every command prints a result table and merges its results into
bench/results/latest.json (keyed by benchmark name; --out changes the file,
--out '' skips it). PostgreSQL is $DATABASE_URL when set, else a throwaway
cluster from the machine's PostgreSQL binaries.
`)
}

// newFlagSet returns a flag set for a subcommand with the flags every
// subcommand shares (--out).
func newFlagSet(name, synopsis string, out io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("auditbench "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	outPath := fs.String("out", defaultResultsPath(), "JSON file the results are merged into ('' to skip)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: go run ./cmd/auditbench %s [flags]\n\n%s\n\nFlags:\n", name, strings.TrimSpace(synopsis))
		fs.PrintDefaults()
	}
	return fs, outPath
}
