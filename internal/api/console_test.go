package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/ui"
)

// histogramOf asks for the histogram with params and decodes a 200.
func histogramOf(t *testing.T, f *fixture, params url.Values, header http.Header) (response, api.HistogramResponse) {
	t.Helper()
	if header == nil {
		header = bearer(fullAccessToken)
	}
	res := f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events/histogram?"+params.Encode(), nil, header))
	var h api.HistogramResponse
	if res.status == http.StatusOK {
		require.NoError(t, json.Unmarshal(res.body, &h))
	}
	return res, h
}

// TestEventsHistogram: the console's per-minute counts over readDataset
// (two events at the top of every hour before readNow): one bucket per
// minute of the range, the query's filters, relative bounds measured from
// now, and every bad parameter named.
func TestEventsHistogram(t *testing.T) {
	f, events := readFixture(t)

	t.Run("counts", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			params url.Values
			match  func(audit.Event) bool
		}{
			{"no filter", url.Values{"since": {"3h"}}, func(audit.Event) bool { return true }},
			{"outcome", url.Values{"since": {"3h"}, "event_outcome": {"failure"}}, func(e audit.Event) bool { return e.EventOutcome == "failure" }},
			{"correlation", url.Values{"since": {"3h"}, "correlation_id": {"corr-2"}}, func(e audit.Event) bool { return e.CorrelationID == "corr-2" }},
			{"absolute", url.Values{"since": {readNow.Add(-3 * time.Hour).Format(time.RFC3339)}, "until": {readNow.Format(time.RFC3339)}},
				func(audit.Event) bool { return true }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res, h := histogramOf(t, f, tc.params, nil)
				require.Equal(t, http.StatusOK, res.status, "%s", res.body)
				require.Equal(t, readNow.Add(-3*time.Hour), h.Since)
				require.Equal(t, readNow, h.Until, "until defaults to now")
				require.Equal(t, 60, h.BucketSeconds)
				require.Len(t, h.Buckets, 3*60+1)
				want := make([]int64, len(h.Buckets))
				var total int64
				for _, e := range events {
					if i := int(e.EventTimestamp.Sub(h.Since) / time.Minute); !e.EventTimestamp.Before(h.Since) && i < len(want) && tc.match(e) {
						want[i]++
						total++
					}
				}
				got := make([]int64, len(h.Buckets))
				for i, b := range h.Buckets {
					require.Equal(t, h.Since.Add(time.Duration(i)*time.Minute), b.Start)
					got[i] = b.Count
				}
				require.Equal(t, want, got)
				require.Equal(t, total, h.Total)
			})
		}
	})

	t.Run("a day at most, and since is required", func(t *testing.T) {
		res, h := histogramOf(t, f, url.Values{"since": {"24h"}}, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Len(t, h.Buckets, 24*60+1)
		for _, tc := range []struct {
			params url.Values
			bad    map[string]any
		}{
			{url.Values{}, map[string]any{"since": "is required: the histogram covers at most 24h0m0s up to until"}},
			{url.Values{"since": {"24h1s"}}, map[string]any{"since": "must be at most 24h0m0s before until (1-minute buckets); narrow the range"}},
			{url.Values{"since": {"2026-06-10"}, "until": {"2026-06-12"}}, map[string]any{"since": "must be at most 24h0m0s before until (1-minute buckets); narrow the range"}},
			{url.Values{"since": {"1h"}, "until": {"2h"}}, map[string]any{"since": "must not be after until"}},
			{url.Values{"since": {"2026-06-16"}}, map[string]any{"since": "must not be after until"}},
			{url.Values{"since": {"1h"}, "until": {"later"}}, map[string]any{
				"until": `"later" is not a duration (30m, 24h, 7d, 1.5d), an RFC 3339 date-time, 2006-01-02T15:04:05 or 2006-01-02`}},
			{url.Values{"since": {"1h"}, "event_outcome": {"maybe"}}, map[string]any{"event_outcome": "must be one of: success, failure, pending"}},
		} {
			t.Run(tc.params.Encode(), func(t *testing.T) {
				res, _ := histogramOf(t, f, tc.params, nil)
				p := requireProblem(t, res, http.StatusBadRequest, "invalid-query-parameter")
				require.Equal(t, tc.bad, p["field_errors"])
			})
		}
	})
}

// TestWhoAmI: any valid credential learns its name, scopes and
// namespaces, whatever its scopes; none is told nothing.
func TestWhoAmI(t *testing.T) {
	f := newFixture(t)
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "writer", SHA256: auth.TokenSHA256("ast_writer"), Scopes: []auth.Scope{auth.ScopeWrite}},
		auth.TokenEntry{Name: "team", SHA256: auth.TokenSHA256("ast_team"), Scopes: []auth.Scope{auth.ScopeRead}, Namespaces: []string{"prod", "staging"}},
	)
	awaitToken(t, f, "ast_team")
	disabled := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Auth = auth.Disabled{} })
	for _, tc := range []struct {
		name  string
		f     *fixture
		token string
		want  api.WhoAmIResponse
	}{
		{"every scope", f, fullAccessToken, api.WhoAmIResponse{Name: "fixture", Scopes: auth.AllScopes, Namespaces: []string{}}},
		{"write only", f, "ast_writer", api.WhoAmIResponse{Name: "writer", Scopes: []auth.Scope{auth.ScopeWrite}, Namespaces: []string{}}},
		{"namespaces", f, "ast_team", api.WhoAmIResponse{Name: "team", Scopes: []auth.Scope{auth.ScopeRead}, Namespaces: []string{"prod", "staging"}}},
		{"AUTH_DISABLED", disabled, "", api.WhoAmIResponse{Name: "anonymous", Scopes: auth.AllScopes, Namespaces: []string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.f.send(http.DefaultClient, tc.f.request(http.MethodGet, "/api/v1/audit/whoami", nil, bearer(tc.token)))
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			var got api.WhoAmIResponse
			require.NoError(t, json.Unmarshal(res.body, &got))
			require.Equal(t, tc.want, got)
		})
	}
	res := f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/whoami", nil, http.Header{}))
	requireProblem(t, res, http.StatusUnauthorized, "unauthenticated")
}

// TestConsoleIsServed: ingest-api serves the console under /ui/ with its
// Content-Security-Policy, and /ui leads there.
func TestConsoleIsServed(t *testing.T) {
	console, err := ui.NewHandler()
	require.NoError(t, err)
	f := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Console = console })
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res := f.send(noRedirect, f.request(http.MethodGet, "/ui", nil, http.Header{}))
	require.Equal(t, http.StatusMovedPermanently, res.status)
	require.Equal(t, "/ui/", res.header.Get("Location"))
	res = f.send(http.DefaultClient, f.request(http.MethodGet, "/ui/", nil, http.Header{}))
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, res.header.Get("Content-Security-Policy"), "default-src 'self'")
	require.Contains(t, string(res.body), "auditstream console")
	require.NotEmpty(t, res.header.Get("X-Request-ID"), "behind the API's middleware, so in the access log")
	res = f.send(http.DefaultClient, f.request(http.MethodGet, "/ui/app.js", nil, http.Header{}))
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, res.header.Get("Content-Type"), "javascript")
}

// TestLogsHoldNoCredential: the access log and the denial log name the
// request and the principal, never the token, whether it is accepted,
// unknown or refused for its scope, and whatever the route.
func TestLogsHoldNoCredential(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	console, err := ui.NewHandler()
	require.NoError(t, err)
	f := newFixture(t, func(_ *api.Config, d *api.Deps) {
		d.Log = zap.New(core)
		d.Console = console
	})
	const writeOnly = "ast_write-only-token-for-the-log-test"
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "writer", SHA256: auth.TokenSHA256(writeOnly), Scopes: []auth.Scope{auth.ScopeWrite}})
	awaitToken(t, f, writeOnly)
	const unknown = "ast_nobody-issued-this-token"
	for _, token := range []string{fullAccessToken, writeOnly, unknown} {
		for _, path := range []string{"/api/v1/audit/whoami", "/api/v1/audit/events?limit=1", "/api/v1/audit/events/histogram?since=1h", "/ui/"} {
			f.send(http.DefaultClient, f.request(http.MethodGet, path, nil, bearer(token)))
		}
	}
	require.NotZero(t, logs.Len())
	var sawPrincipal, sawDenial bool
	for _, e := range logs.All() {
		line, err := json.Marshal(e.ContextMap())
		require.NoError(t, err)
		text := e.Message + " " + string(line)
		for _, token := range []string{fullAccessToken, writeOnly, unknown, "Bearer"} {
			require.NotContains(t, text, token)
		}
		require.NotContains(t, strings.ToLower(text), "authorization")
		sawPrincipal = sawPrincipal || e.ContextMap()["principal"] == "writer"
		sawDenial = sawDenial || e.Message == "request denied"
	}
	require.True(t, sawPrincipal && sawDenial, "the denials are logged, by principal")
}
