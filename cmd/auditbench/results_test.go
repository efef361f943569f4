package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuantileNearestRank(t *testing.T) {
	var l latencies
	for i := 1; i <= 500; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 250 * time.Millisecond, 0.99: 495 * time.Millisecond, 1: 500 * time.Millisecond} {
		if got := l.quantile(q); got != want {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if l.max() != 500*time.Millisecond || (latencies{}).quantile(0.5) != 0 {
		t.Error("max or empty quantile wrong")
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{Value: 19.9, Target: Below(20)}, "PASS"},
		{Result{Value: 20, Target: Below(20)}, "MISS"},
		{Result{Value: 5, Target: AtLeast(5)}, "PASS"},
		{Result{Value: 4, Target: AtLeast(5)}, "MISS"},
		{Result{Value: 4}, ""},
	} {
		if got := tc.r.Status(); got != tc.want {
			t.Errorf("%+v: status %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestMergeJSONKeepsOtherEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench", "results", "latest.json")
	env := Env{Command: "x"}
	if err := MergeJSON(path, []Result{{Name: "a", Value: 1, Unit: "ms"}, {Name: "b", Value: 2, Unit: "ms"}}, env); err != nil {
		t.Fatal(err)
	}
	if err := MergeJSON(path, []Result{{Name: "b", Value: 3, Unit: "ms", Target: Below(20)}}, env); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]struct {
		Value  float64 `json:"value"`
		Status string  `json:"status"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"].Value != 1 || got["b"].Value != 3 || got["b"].Status != "PASS" {
		t.Fatalf("merged file: %s", raw)
	}
}

func TestPrintTable(t *testing.T) {
	var buf bytes.Buffer
	PrintTable(&buf, []Result{{Name: "query.x.p99", Value: 21.5, Unit: "ms", Target: Below(20), Notes: "n"}})
	if out := buf.String(); !strings.Contains(out, "< 20 ms") || !strings.Contains(out, "MISS") || !strings.Contains(out, "21.50") {
		t.Fatalf("table:\n%s", out)
	}
}
