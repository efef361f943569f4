package main

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

func TestCommandLine(t *testing.T) {
	selected := func(kctx *kong.Context) any { return kctx.Selected().Target.Addr().Interface() }
	tests := []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, kctx *kong.Context, r *run)
	}{
		{name: "help", args: []string{"--help"}},
		{name: "stage help", args: []string{"query", "--help"}},
		{name: "no command", args: nil, code: 2},
		{name: "unknown command", args: []string{"nope"}, code: 2},
		{name: "unknown flag", args: []string{"api", "--nope"}, code: 2},
		{name: "bad value", args: []string{"writer", "--rows", "many"}, code: 2},
		{name: "defaults", args: []string{"writer"}, check: func(t *testing.T, kctx *kong.Context, r *run) {
			if kctx.Command() != "writer" || selected(kctx).(*writerCmd).Rows != 200_000 {
				t.Errorf("command %q, %+v", kctx.Command(), selected(kctx))
			}
			if r.env.OutPath != defaultResultsPath() || r.env.Command != "writer" {
				t.Errorf("env %+v", r.env)
			}
		}},
		{name: "out skipped", args: []string{"api", "--out", "", "--concurrency", "4"}, check: func(t *testing.T, kctx *kong.Context, r *run) {
			if r.env.OutPath != "" || selected(kctx).(*apiCmd).Concurrency != 4 || r.env.Command != "api --out  --concurrency 4" {
				t.Errorf("env %+v, %+v", r.env, selected(kctx))
			}
		}},
		{name: "verify defaults", args: []string{"verify"}, check: func(t *testing.T, kctx *kong.Context, _ *run) {
			if v := selected(kctx).(*verifyCmd); v.Events != 100_000 || v.Iterations != 3 {
				t.Errorf("%+v", v)
			}
		}},
		{name: "query defaults", args: []string{"query"}, check: func(t *testing.T, kctx *kong.Context, _ *run) {
			if q := selected(kctx).(*queryCmd); q.Rows != 10_000_000 || q.Iterations != 500 || q.Chunk != 500_000 {
				t.Errorf("%+v", q)
			}
		}},
		{name: "all defaults", args: []string{"all"}, check: func(t *testing.T, kctx *kong.Context, r *run) {
			a := selected(kctx).(*allCmd)
			a.long(r.given)
			if a.API.Duration != 10*time.Second || a.Writer.Rows != 200_000 || a.Writer.BacklogRows != 1_000_000 || a.Query.Rows != 1_000_000 || a.Query.Iterations != 300 ||
				a.Verify.Events != 100_000 || !slices.Equal(a.Stages, []string{"api", "writer", "lag", "query", "spool", "verify"}) {
				t.Errorf("%+v", a)
			}
		}},
		{name: "all long keeps given sizes", args: []string{"all", "--long", "--writer-rows", "7", "--query-iterations=9"},
			check: func(t *testing.T, kctx *kong.Context, r *run) {
				a := selected(kctx).(*allCmd)
				a.long(r.given)
				if a.API.Duration != 30*time.Second || a.Writer.Rows != 7 || a.LagDuration != 5*time.Minute ||
					a.Query.Rows != 10_000_000 || a.Query.Iterations != 9 || a.Verify.Events != 1_000_000 {
					t.Errorf("%+v", a)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kctx, r, code := parse(tc.args, io.Discard, io.Discard)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			if (kctx != nil) != (tc.check != nil) {
				t.Fatalf("context %v", kctx)
			}
			if tc.check != nil {
				tc.check(t, kctx, r)
			}
		})
	}
}
