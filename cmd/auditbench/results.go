package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one measured number.
type Result struct {
	// Name identifies the benchmark across runs: "<stage>.<case>.<metric>",
	// e.g. "query.correlation_id.p99". It is the key in latest.json.
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Target is what the value is measured against, when there is one.
	Target *Target `json:"target,omitempty"`
	Notes  string  `json:"notes,omitempty"`
}

// Target is an upper bound (Below) or a lower bound (AtLeast) the value
// must meet; exactly one is set.
type Target struct {
	Below   *float64 `json:"below,omitempty"`
	AtLeast *float64 `json:"at_least,omitempty"`
}

// Below returns a target the value must stay under.
func Below(v float64) *Target { return &Target{Below: &v} }

// AtLeast returns a target the value must reach.
func AtLeast(v float64) *Target { return &Target{AtLeast: &v} }

func (t *Target) String(unit string) string {
	switch {
	case t == nil:
		return ""
	case t.Below != nil:
		return "< " + formatValue(*t.Below) + " " + unit
	case t.AtLeast != nil:
		return ">= " + formatValue(*t.AtLeast) + " " + unit
	}
	return ""
}

// Status is PASS or MISS for a result with a target, else "".
func (r Result) Status() string {
	switch {
	case r.Target == nil:
		return ""
	case r.Target.Below != nil && r.Value >= *r.Target.Below,
		r.Target.AtLeast != nil && r.Value < *r.Target.AtLeast:
		return "MISS"
	}
	return "PASS"
}

// Missed reports whether any result missed its target.
func Missed(results []Result) bool {
	for _, r := range results {
		if r.Status() == "MISS" {
			return true
		}
	}
	return false
}

// Env describes the run the results come from; it is stored with each
// result in the JSON file, since numbers mean little without the machine
// and the data size behind them.
type Env struct {
	// OutPath is the JSON file to merge into; "" skips it.
	OutPath string `json:"-"`
	// Command is the subcommand line, e.g. "query --rows 10000000".
	Command string `json:"command"`
	// Params are stage-specific facts: rows, PostgreSQL version and settings, ...
	Params map[string]string `json:"params,omitempty"`
}

// PrintTable writes the results as an aligned table, in their order.
func PrintTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tVALUE\tUNIT\tTARGET\tSTATUS\tNOTES")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, formatValue(r.Value), r.Unit, r.Target.String(r.Unit), r.Status(), r.Notes)
	}
	_ = tw.Flush()
}

// formatValue prints 3 significant decimals for small values and none for
// large ones.
func formatValue(v float64) string {
	switch {
	case v >= 1000 || v == float64(int64(v)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// record is one entry of latest.json.
type record struct {
	Result
	Status     string    `json:"status,omitempty"`
	MeasuredAt time.Time `json:"measured_at"`
	Host       hostInfo  `json:"host"`
	Run        Env       `json:"run"`
}

type hostInfo struct {
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
}

// MergeJSON merges results into the JSON object at path (creating it and
// its directory), replacing entries of the same name and keeping the rest,
// so each stage updates only its own benchmarks. The file is replaced
// atomically.
func MergeJSON(path string, results []Result, env Env) error {
	entries := map[string]json.RawMessage{}
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	case len(strings.TrimSpace(string(old))) > 0:
		if err := json.Unmarshal(old, &entries); err != nil {
			return fmt.Errorf("%s is not a JSON object of results (%w); move it away", path, err)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	host := hostInfo{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	for _, r := range results {
		b, err := json.Marshal(record{Result: r, Status: r.Status(), MeasuredAt: now, Host: host, Run: env})
		if err != nil {
			return err
		}
		entries[r.Name] = b
	}
	out, err := json.MarshalIndent(entries, "", "  ") // map keys are sorted
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create results directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".latest-*.json")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write results: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// defaultResultsPath is bench/results/latest.json in the module root (the
// nearest directory above the working directory holding go.mod), so the
// file lands in the same place whichever directory the tool runs from.
func defaultResultsPath() string {
	rel := filepath.Join("bench", "results", "latest.json")
	dir, err := os.Getwd()
	if err != nil {
		return rel
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, rel)
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, rel)
		}
	}
}
