package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/testenv"
)

// spies count what reaches Kafka and PostgreSQL through the handlers, so a
// refused request can be shown to have reached neither.
type spies struct {
	published, queried, reserved atomic.Int64
}

// spyPublisher is a decorator of the API's watermill publisher, as a
// spool would be.
type spyPublisher struct {
	s *spies
	message.Publisher
}

func (p spyPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.s.published.Add(int64(len(msgs)))
	return p.Publisher.Publish(topic, msgs...)
}

type spyReader struct {
	s    *spies
	next *query.Reader
}

func (r spyReader) Stream(ctx context.Context, f query.Filter, p query.Page, emit func(*query.Event) (bool, error)) (query.Summary, error) {
	r.s.queried.Add(1)
	return r.next.Stream(ctx, f, p, emit)
}

func (r spyReader) Get(ctx context.Context, id uuid.UUID) (query.Event, error) {
	r.s.queried.Add(1)
	return r.next.Get(ctx, id)
}

func (r spyReader) Histogram(ctx context.Context, f query.Filter) ([]query.Bucket, error) {
	r.s.queried.Add(1)
	return r.next.Histogram(ctx, f)
}

type spyReserver struct{ s *spies }

func (r spyReserver) ReserveNotification(ctx context.Context, id string, digest [sha256.Size]byte, at time.Time) (audit.Reservation, error) {
	r.s.reserved.Add(1)
	return shared.db.ReserveNotification(ctx, id, digest, at)
}

func (r spyReserver) ReleaseNotification(ctx context.Context, id string, reserved int64) error {
	return shared.db.ReleaseNotification(ctx, id, reserved)
}

func withSpies(s *spies) fixtureOption {
	return func(_ *api.Config, d *api.Deps) {
		d.Publisher = spyPublisher{s: s, Publisher: d.Publisher}
		d.Events = spyReader{s: s, next: shared.reader}
		d.Notifications = spyReserver{s: s}
	}
}

// untouched fails the test if anything reached Kafka or PostgreSQL.
func (s *spies) untouched(t *testing.T, what string) {
	t.Helper()
	require.Zero(t, s.published.Load(), "%s: records published", what)
	require.Zero(t, s.queried.Load(), "%s: queries run", what)
	require.Zero(t, s.reserved.Load(), "%s: notification checks run", what)
}

func withAuth(cfg auth.Config) fixtureOption {
	return func(_ *api.Config, d *api.Deps) {
		a, err := auth.New(cfg, zap.NewNop(), d.Registerer)
		if err != nil {
			panic(err)
		}
		d.Auth = a
	}
}

func withLimiter(rps float64, burst int) fixtureOption {
	return func(_ *api.Config, d *api.Deps) {
		l, err := auth.NewLimiter(rps, burst)
		if err != nil {
			panic(err)
		}
		d.Limiter = l
	}
}

// request builds a request with exactly the headers given (no default
// token), for the tests of what a credential looks like.
func (f *fixture) request(method, path string, body []byte, header http.Header) *http.Request {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.url+path, bytes.NewReader(body))
	require.NoError(f.t, err)
	req.Header = header.Clone()
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// requireProblem checks a refusal: its status, problem type, and that it
// is a refusal (never a 500).
func requireProblem(t *testing.T, res response, status int, kind string) map[string]any {
	t.Helper()
	require.Equal(t, status, res.status, "%s", res.body)
	p := res.json(t)
	require.Equal(t, "https://auditstream.dev/problems/"+kind, p["type"], "%s", res.body)
	return p
}

// TestBadCredentialsAreRefused: every malformed, unknown or oversized
// credential gets 401 with the RFC 6750 challenge, on every route, before
// anything reaches Kafka or PostgreSQL, and says nothing of the resource.
func TestBadCredentialsAreRefused(t *testing.T) {
	s := &spies{}
	f := newFixture(t, withSpies(s))
	existing := f.postJSON("/api/v1/audit/events", validEvent()).json(t)["event_id"].(string)
	s.published.Store(0)

	huge := "ast_" + strings.Repeat("A", 10<<10)
	cases := []struct {
		name      string
		header    http.Header
		challenge string
	}{
		{"no header", http.Header{}, `Bearer realm="auditstream"`},
		{"empty header", http.Header{"Authorization": {""}}, `Bearer realm="auditstream", error="invalid_request"`},
		{"empty bearer", bearer(""), `Bearer realm="auditstream", error="invalid_request"`},
		{"basic", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("admin:admin"))}}, `Bearer realm="auditstream", error="invalid_request"`},
		{"two headers", http.Header{"Authorization": {"Bearer " + fullAccessToken, "Bearer " + fullAccessToken}}, `Bearer realm="auditstream", error="invalid_request"`},
		{"10 KB token", bearer(huge), `Bearer realm="auditstream", error="invalid_token"`},
		{"unknown token", bearer("ast_not-a-token-anyone-issued"), `Bearer realm="auditstream", error="invalid_token"`},
		{"token with a changed byte", bearer(fullAccessToken[:len(fullAccessToken)-1] + "X"), `Bearer realm="auditstream", error="invalid_token"`},
		{"a JWT when no issuer is configured", bearer("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"), `Bearer realm="auditstream", error="invalid_token"`},
	}
	routes := []struct {
		method, path string
		body         []byte
	}{
		{http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent())},
		{http.MethodPost, "/api/v1/audit/events/batch", mustJSON(t, []any{validEvent()})},
		{http.MethodPost, "/api/v1/audit/notifications", mustJSON(t, validNotification("n-"+uuid.NewString()))},
		{http.MethodPost, "/api/v1/audit/legal-hold", []byte(`{"correlation_id":"rr-2025-001","reason":"r"}`)},
		{http.MethodGet, "/api/v1/audit/legal-hold", nil},
		{http.MethodDelete, "/api/v1/audit/legal-hold/rr-2025-001", []byte(`{"release_reason":"r"}`)},
		{http.MethodGet, "/api/v1/audit/events?namespace=prod", nil},
		{http.MethodGet, "/api/v1/audit/events/histogram?since=1h", nil},
		{http.MethodGet, "/api/v1/audit/whoami", nil},
		{http.MethodGet, "/api/v1/audit/events/" + existing, nil},
		{http.MethodGet, "/api/v1/audit/events/" + uuid.NewString(), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var bodies []string
			for _, r := range routes {
				res := f.send(http.DefaultClient, f.request(r.method, r.path, r.body, tc.header))
				p := requireProblem(t, res, http.StatusUnauthorized, "unauthenticated")
				require.Equal(t, tc.challenge, res.header.Get("WWW-Authenticate"), "%s %s", r.method, r.path)
				bodies = append(bodies, p["detail"].(string))
			}
			// The stored and the unknown event get the same answer.
			require.Equal(t, bodies[len(bodies)-2], bodies[len(bodies)-1])
		})
	}
	s.untouched(t, "bad credentials")
	for _, reason := range []string{"missing_credentials", "malformed_credentials", "token_too_large", "unknown_token"} {
		require.Positive(t, denied(t, f, reason), reason)
	}
}

// denied is the fixture's auditstream_auth_denied_total of reason.
func denied(t *testing.T, f *fixture, reason string) float64 {
	t.Helper()
	families, err := f.registry.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != "auditstream_auth_denied_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no auditstream_auth_denied_total{reason=%q}", reason)
	return 0
}

// TestScopesPerRoute: a valid credential without the route's scope gets
// 403 naming it, and audit:admin implies neither of the others.
func TestScopesPerRoute(t *testing.T) {
	s := &spies{}
	f := newFixture(t, withSpies(s))
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "writer", SHA256: auth.TokenSHA256("ast_writer"), Scopes: []auth.Scope{auth.ScopeWrite}},
		auth.TokenEntry{Name: "reader", SHA256: auth.TokenSHA256("ast_reader"), Scopes: []auth.Scope{auth.ScopeRead}},
		auth.TokenEntry{Name: "admin", SHA256: auth.TokenSHA256("ast_admin"), Scopes: []auth.Scope{auth.ScopeAdmin}},
	)
	awaitToken(t, f, "ast_admin")

	for _, tc := range []struct {
		token, method, path, scope string
		body                       []byte
	}{
		{"ast_reader", http.MethodPost, "/api/v1/audit/events", "audit:write", mustJSON(t, validEvent())},
		{"ast_reader", http.MethodPost, "/api/v1/audit/events/batch", "audit:write", mustJSON(t, []any{validEvent()})},
		{"ast_reader", http.MethodPost, "/api/v1/audit/notifications", "audit:write", mustJSON(t, validNotification("n"))},
		{"ast_writer", http.MethodGet, "/api/v1/audit/events", "audit:read", nil},
		{"ast_writer", http.MethodGet, "/api/v1/audit/events/" + uuid.NewString(), "audit:read", nil},
		{"ast_admin", http.MethodGet, "/api/v1/audit/events", "audit:read", nil},
		{"ast_admin", http.MethodPost, "/api/v1/audit/events", "audit:write", mustJSON(t, validEvent())},
		{"ast_writer", http.MethodGet, "/api/v1/audit/events/histogram?since=1h", "audit:read", nil},
		{"ast_admin", http.MethodGet, "/api/v1/audit/events/histogram?since=1h", "audit:read", nil},
		{"ast_reader", http.MethodPost, "/api/v1/audit/legal-hold", "audit:admin", []byte(`{"correlation_id":"c","reason":"r"}`)},
		{"ast_writer", http.MethodPost, "/api/v1/audit/legal-hold", "audit:admin", []byte(`{"correlation_id":"c","reason":"r"}`)},
		{"ast_reader", http.MethodDelete, "/api/v1/audit/legal-hold/c", "audit:admin", []byte(`{"release_reason":"r"}`)},
		{"ast_writer", http.MethodGet, "/api/v1/audit/legal-hold", "audit:read", nil},
		{"ast_admin", http.MethodGet, "/api/v1/audit/legal-hold", "audit:read", nil},
	} {
		res := f.send(http.DefaultClient, f.request(tc.method, tc.path, tc.body, bearer(tc.token)))
		p := requireProblem(t, res, http.StatusForbidden, "forbidden")
		require.Equal(t, tc.scope, p["required_scope"])
		require.Contains(t, p["detail"], tc.scope)
		require.Contains(t, res.header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
	}
	s.untouched(t, "missing scopes")

	res := f.send(http.DefaultClient, f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), bearer("ast_writer")))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	res = f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events", nil, bearer("ast_reader")))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
}

// awaitToken waits until the fixture's authenticator has picked up a
// changed tokens file (it looks at most every millisecond).
func awaitToken(t *testing.T, f *fixture, token string) {
	t.Helper()
	testenvAwait(t, "the tokens file is reloaded", func() (bool, string) {
		r := f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events/"+uuid.NewString(), nil, bearer(token)))
		return r.status != http.StatusUnauthorized, fmt.Sprint(r.status)
	})
}

// TestRevokedKeyAfterTheFileChanges: a key removed from the tokens file
// stops working without a restart; a broken file keeps the last good one.
func TestRevokedKeyAfterTheFileChanges(t *testing.T) {
	s := &spies{}
	f := newFixture(t, withSpies(s))
	const leaving = "ast_leaving-team-token"
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "leaving", SHA256: auth.TokenSHA256(leaving), Scopes: []auth.Scope{auth.ScopeWrite}})
	awaitToken(t, f, leaving)
	require.Equal(t, http.StatusCreated, f.send(http.DefaultClient,
		f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), bearer(leaving))).status)

	// A file that does not parse leaves the key set as it was.
	require.NoError(t, os.WriteFile(f.tokensFile, []byte("tokens: [{name: x, sha256: nothex}]"), 0o600))
	require.Equal(t, http.StatusCreated, f.send(http.DefaultClient,
		f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), bearer(leaving))).status)

	writeTokens(t, f.tokensFile, auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes})
	published := s.published.Load()
	testenvAwait(t, "the revoked key is refused", func() (bool, string) {
		res := f.send(http.DefaultClient, f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), bearer(leaving)))
		if res.status == http.StatusCreated {
			published = s.published.Load()
		}
		return res.status == http.StatusUnauthorized, fmt.Sprint(res.status)
	})
	res := f.send(http.DefaultClient, f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), bearer(leaving)))
	requireProblem(t, res, http.StatusUnauthorized, "unauthenticated")
	require.Equal(t, published, s.published.Load(), "nothing published once revoked")
	require.Equal(t, http.StatusCreated, f.postJSON("/api/v1/audit/events", validEvent()).status, "the other key still works")
}

// storeEvents writes events straight to the database (the writer's job),
// one per namespace given, under a correlation id of their own.
func storeEvents(t *testing.T, correlation string, namespaces ...*string) []audit.Event {
	t.Helper()
	var events []audit.Event
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	for i, ns := range namespaces {
		events = append(events, audit.Event{
			EventID: uuid.New(), Version: "1.0", EventType: "t", EventTimestamp: base.Add(-time.Duration(i) * time.Second),
			EventCategory: "gateway", EventAction: "a", EventOutcome: "success", CorrelationID: correlation,
			Namespace: ns, EventData: json.RawMessage(`{}`),
		})
	}
	_, err := shared.db.Write(t.Context(), events, nil)
	require.NoError(t, err)
	return events
}

func strp(s string) *string { return &s }

// TestNamespaceRestriction: a principal limited to namespaces reads only
// those (a parameter or a cursor cannot widen it), sees another
// namespace's event as not stored, and writes only inside them.
func TestNamespaceRestriction(t *testing.T) {
	f := newFixture(t)
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "team-a", SHA256: auth.TokenSHA256("ast_team-a"), Scopes: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}, Namespaces: []string{"team-a"}},
		auth.TokenEntry{Name: "team-b", SHA256: auth.TokenSHA256("ast_team-b"), Scopes: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}, Namespaces: []string{"team-b"}},
	)
	awaitToken(t, f, "ast_team-b")
	corr := "ns-" + uuid.NewString()
	stored := storeEvents(t, corr, strp("team-a"), strp("team-b"), strp("team-a"), nil, strp("team-b"), strp("team-a"))

	get := func(token, query string) response {
		return f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events?correlation_id="+corr+query, nil, bearer(token)))
	}
	page := func(res response) (namespaces []string, next string) {
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		var body struct {
			Data       []query.Event  `json:"data"`
			Pagination api.Pagination `json:"pagination"`
		}
		require.NoError(t, json.Unmarshal(res.body, &body))
		for _, e := range body.Data {
			ns := "(none)"
			if e.Namespace != nil {
				ns = *e.Namespace
			}
			namespaces = append(namespaces, ns)
		}
		return namespaces, body.Pagination.NextCursor
	}

	got, _ := page(get("ast_team-a", ""))
	require.Equal(t, []string{"team-a", "team-a", "team-a"}, got)
	got, _ = page(get("ast_team-a", "&namespace=team-a"))
	require.Len(t, got, 3)
	all, _ := page(get(fullAccessToken, ""))
	require.Len(t, all, 6, "an unrestricted principal sees every namespace and none")

	t.Run("namespace of another team", func(t *testing.T) {
		s := &spies{}
		g := newFixture(t, withSpies(s), withTokensOf(f))
		res := g.send(http.DefaultClient, g.request(http.MethodGet, "/api/v1/audit/events?correlation_id="+corr+"&namespace=team-b", nil, bearer("ast_team-a")))
		requireProblem(t, res, http.StatusForbidden, "forbidden")
		s.untouched(t, "another team's namespace")
	})

	t.Run("histogram", func(t *testing.T) {
		count := func(token, extra string) int64 {
			res := f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events/histogram?since=2h&correlation_id="+corr+extra, nil, bearer(token)))
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			var h api.HistogramResponse
			require.NoError(t, json.Unmarshal(res.body, &h))
			return h.Total
		}
		require.EqualValues(t, 3, count("ast_team-a", ""), "only its namespace")
		require.EqualValues(t, 6, count(fullAccessToken, ""))
		s := &spies{}
		g := newFixture(t, withSpies(s), withTokensOf(f))
		res := g.send(http.DefaultClient, g.request(http.MethodGet, "/api/v1/audit/events/histogram?since=2h&namespace=team-b", nil, bearer("ast_team-a")))
		requireProblem(t, res, http.StatusForbidden, "forbidden")
		s.untouched(t, "another team's histogram")
	})

	t.Run("a cursor minted by another principal", func(t *testing.T) {
		// team-b pages its own events; team-a replays team-b's cursor.
		// The cursor is only a position: team-a still sees team-a's
		// events only, the same as from a cursor nobody minted.
		_, cursorB := page(get("ast_team-b", "&limit=1"))
		require.NotEmpty(t, cursorB)
		gotA, _ := page(get("ast_team-a", "&cursor="+cursorB))
		for _, ns := range gotA {
			require.Equal(t, "team-a", ns)
		}
		forged := query.Cursor{Timestamp: stored[1].EventTimestamp, EventID: uuid.New()}.Encode()
		gotForged, _ := page(get("ast_team-a", "&cursor="+forged))
		require.Equal(t, gotForged, gotA, "another's cursor tells nothing a made-up position would not")
	})

	t.Run("another namespace's event is not stored", func(t *testing.T) {
		res := f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events/"+stored[1].EventID.String(), nil, bearer("ast_team-a")))
		hidden := requireProblem(t, res, http.StatusNotFound, "not-found")
		unknown := uuid.New()
		res = f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events/"+unknown.String(), nil, bearer("ast_team-a")))
		missing := requireProblem(t, res, http.StatusNotFound, "not-found")
		require.Equal(t, strings.ReplaceAll(missing["detail"].(string), unknown.String(), stored[1].EventID.String()), hidden["detail"])
		res = f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events/"+stored[3].EventID.String(), nil, bearer("ast_team-a")))
		requireProblem(t, res, http.StatusNotFound, "not-found") // no namespace: no team's
		res = f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events/"+stored[0].EventID.String(), nil, bearer("ast_team-a")))
		require.Equal(t, http.StatusOK, res.status, "its own")
	})

	t.Run("writes outside its namespaces", func(t *testing.T) {
		s := &spies{}
		g := newFixture(t, withSpies(s), withTokensOf(f))
		other, none := validEvent(), validEvent()
		other["namespace"] = "team-b"
		delete(none, "namespace")
		own := validEvent()
		own["namespace"] = "team-a"
		for _, tc := range []struct {
			path string
			body any
		}{
			{"/api/v1/audit/events", other},
			{"/api/v1/audit/events", none},
			{"/api/v1/audit/events/batch", []any{own, other, own}},
			{"/api/v1/audit/notifications", validNotification("n-" + uuid.NewString())},
		} {
			res := g.send(http.DefaultClient, g.request(http.MethodPost, tc.path, mustJSON(t, tc.body), bearer("ast_team-a")))
			requireProblem(t, res, http.StatusForbidden, "forbidden")
		}
		s.untouched(t, "writes outside the namespaces")
		res := g.send(http.DefaultClient, g.request(http.MethodPost, "/api/v1/audit/events/batch", mustJSON(t, []any{own, own}), bearer("ast_team-a")))
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	})
}

// withTokensOf makes a fixture accept the tokens of another fixture's file.
func withTokensOf(other *fixture) fixtureOption {
	return withAuth(auth.Config{TokensFile: other.tokensFile, FileCheckInterval: time.Millisecond})
}

// TestRateLimitPerPrincipal: a burst over the limit gets 429 with
// Retry-After, a batch costs its number of events, the bucket is the
// principal's whatever X-Forwarded-For says, and nothing refused is
// published.
func TestRateLimitPerPrincipal(t *testing.T) {
	s := &spies{}
	f := newFixture(t, withSpies(s), withLimiter(0.01, 6))
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "other", SHA256: auth.TokenSHA256("ast_other"), Scopes: auth.AllScopes})
	post := func(token, path string, body any, forwardedFor string) response {
		h := bearer(token)
		h.Set("X-Forwarded-For", forwardedFor)
		return f.send(http.DefaultClient, f.request(http.MethodPost, path, mustJSON(t, body), h))
	}
	batch := []any{validEvent(), validEvent(), validEvent()}
	require.Equal(t, http.StatusCreated, post(fullAccessToken, "/api/v1/audit/events/batch", batch, "198.51.100.1").status)
	require.Equal(t, http.StatusCreated, post(fullAccessToken, "/api/v1/audit/events", validEvent(), "198.51.100.2").status)
	require.Equal(t, int64(4), s.published.Load())

	// Two tokens left: a batch of three does not fit (its arrival spends
	// one, as every request's does), a forged address does not help, and
	// the refused batch was not published.
	res := post(fullAccessToken, "/api/v1/audit/events/batch", batch, "198.51.100.3")
	requireProblem(t, res, http.StatusTooManyRequests, "rate-limited")
	require.NotEmpty(t, res.header.Get("Retry-After"))
	require.Equal(t, int64(4), s.published.Load())
	require.Equal(t, http.StatusCreated, post(fullAccessToken, "/api/v1/audit/events", validEvent(), "203.0.113.9").status, "the last token")
	for range 3 {
		res = post(fullAccessToken, "/api/v1/audit/events", validEvent(), uuid.NewString())
		requireProblem(t, res, http.StatusTooManyRequests, "rate-limited")
	}
	require.Equal(t, int64(5), s.published.Load())
	require.Equal(t, http.StatusCreated, post("ast_other", "/api/v1/audit/events", validEvent(), "").status, "another principal has its own bucket")
	require.Equal(t, float64(4), denied(t, f, "rate_limited"))
}

// TestDenialLogUsesTrustedProxiesOnly: a denial is logged with the
// principal, route, reason and the remote address, which comes from
// X-Forwarded-For only when the peer is a trusted proxy.
func TestDenialLogUsesTrustedProxiesOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		want    string
	}{
		{"untrusted peer", nil, "127.0.0.1"},
		{"trusted proxy", []string{"127.0.0.0/8"}, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			f := newFixture(t, func(c *api.Config, d *api.Deps) { c.TrustedProxies = tc.trusted; d.Log = zap.New(core) })
			h := bearer("ast_wrong")
			h.Set("X-Forwarded-For", "198.51.100.7")
			requireProblem(t, f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events", nil, h)), http.StatusUnauthorized, "unauthenticated")
			h = bearer(fullAccessToken)
			h.Set("X-Forwarded-For", "198.51.100.7")
			writeTokens(t, f.tokensFile, auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: []auth.Scope{auth.ScopeWrite}})
			testenvAwait(t, "scopes reloaded", func() (bool, string) {
				res := f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events", nil, h))
				return res.status == http.StatusForbidden, fmt.Sprint(res.status)
			})
			denials := logs.FilterMessage("request denied").AllUntimed()
			require.GreaterOrEqual(t, len(denials), 2)
			first, last := denials[0].ContextMap(), denials[len(denials)-1].ContextMap()
			require.Equal(t, "unknown_token", first["reason"])
			require.Equal(t, "/api/v1/audit/events", first["route"])
			require.Equal(t, tc.want, first["remote_addr"])
			require.NotContains(t, first, "principal", "unknown before authentication")
			require.Equal(t, "missing_scope", last["reason"])
			require.Equal(t, "fixture", last["principal"])
		})
	}
}

// testenvAwait is testenv.Await with the timeout of these tests.
func testenvAwait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.Await(t, 10*time.Second, what, cond)
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// issuer is an OIDC issuer on a real TLS listener: discovery, a JWKS it
// counts fetches of, and keys generated here.
type issuer struct {
	srv     *httptest.Server
	caFile  string
	mu      sync.Mutex
	keys    map[string]*ecdsa.PrivateKey // published, by kid
	fetches atomic.Int64
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{keys: map[string]*ecdsa.PrivateKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		var set jose.JSONWebKeySet
		for kid, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"})
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	is.caFile = writeFile(t, t.TempDir(), "issuer-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw}))
	is.addKey(t, "key-1")
	return is
}

func (is *issuer) addKey(t *testing.T, kid string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	is.mu.Lock()
	is.keys[kid] = k
	is.mu.Unlock()
	return k
}

func (is *issuer) key(kid string) *ecdsa.PrivateKey {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[kid]
}

// claims are a token's claims, valid by default.
type claims struct {
	jwt.Claims
	Scope string `json:"scope,omitempty"`
}

func (is *issuer) claims(sub string, now time.Time) claims {
	return claims{Claims: jwt.Claims{
		Issuer: is.srv.URL, Subject: sub, Audience: jwt.Audience{"auditstream"},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
}

// sign makes a compact JWT with alg and key (a kid header names kid).
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, c claims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	require.NoError(t, err)
	raw, err := jwt.Signed(signer).Claims(c).Serialize()
	require.NoError(t, err)
	return raw
}

// clock is a real clock that a test can move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func jwtFixture(t *testing.T, is *issuer, clk *clock, s *spies, policyFile string) *fixture {
	t.Helper()
	return newFixture(t, withSpies(s), withAuth(auth.Config{
		PolicyFile:        policyFile,
		FileCheckInterval: time.Millisecond,
		JWT: &auth.JWTConfig{
			Issuer: is.srv.URL, Audience: "auditstream", CAFile: is.caFile, Leeway: 30 * time.Second,
			MinRefreshInterval: time.Minute, MaxKeyAge: time.Hour, Now: clk.now,
		},
	}))
}

// TestJWTs: tokens of the configured issuer are verified against its
// JWKS found by discovery over TLS; every way a token can be wrong is 401
// before anything reaches Kafka or PostgreSQL.
func TestJWTs(t *testing.T) {
	is := newIssuer(t)
	clk := &clock{}
	s := &spies{}
	policy := writeFile(t, t.TempDir(), "policy.yaml", []byte(`rules:
  - subject: "system:serviceaccount:payments:*"
    scopes: [audit:write, audit:read]
    namespaces: [payments]
`))
	f := jwtFixture(t, is, clk, s, policy)
	now := time.Now()
	k1 := is.key("key-1")

	good := is.claims("svc-billing", now)
	good.Scope = "openid audit:write"
	res := f.send(http.DefaultClient, f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), bearer(sign(t, jose.ES256, k1, "key-1", good))))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.Equal(t, int64(1), is.fetches.Load(), "keys fetched once")
	s.published.Store(0)

	// A service-account token carries no scope: the policy file gives it
	// scopes and limits it to its namespace.
	sa := sign(t, jose.ES256, k1, "key-1", is.claims("system:serviceaccount:payments:api", now))
	other := validEvent()
	other["namespace"] = "billing"
	requireProblem(t, f.send(http.DefaultClient, f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, other), bearer(sa))),
		http.StatusForbidden, "forbidden")
	noPolicy := sign(t, jose.ES256, k1, "key-1", is.claims("system:serviceaccount:other:api", now))
	requireProblem(t, f.send(http.DefaultClient, f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), bearer(noPolicy))),
		http.StatusForbidden, "forbidden")

	expired := is.claims("svc", now.Add(-2*time.Hour))
	notYet := is.claims("svc", now.Add(10*time.Minute))
	wrongAud := is.claims("svc", now)
	wrongAud.Audience = jwt.Audience{"another-service"}
	wrongIss := is.claims("svc", now)
	wrongIss.Issuer = "https://evil.example"
	noExp := is.claims("svc", now)
	noExp.Expiry = nil
	for _, c := range []*claims{&expired, &notYet, &wrongAud, &wrongIss, &noExp} {
		c.Scope = "audit:write audit:read"
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k1.PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	validClaims := is.claims("svc", now)
	validClaims.Scope = "audit:write audit:read"
	payload := base64.RawURLEncoding.EncodeToString(mustJSON(t, validClaims))
	system := is.claims(audit.SystemPrincipal, now)
	system.Scope = "audit:write audit:read"

	for _, tc := range []struct {
		name, token, challenge string
	}{
		{"expired", sign(t, jose.ES256, k1, "key-1", expired), `error="invalid_token", error_description="the token expired"`},
		{"not yet valid", sign(t, jose.ES256, k1, "key-1", notYet), `error="invalid_token"`},
		{"wrong audience", sign(t, jose.ES256, k1, "key-1", wrongAud), `error="invalid_token"`},
		{"wrong issuer", sign(t, jose.ES256, k1, "key-1", wrongIss), `error="invalid_token"`},
		{"no exp", sign(t, jose.ES256, k1, "key-1", noExp), `error="invalid_token"`},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"key-1"}`)) + "." + payload + ".", `error="invalid_token"`},
		{"HS256 signed with the public key", sign(t, jose.HS256, pubPEM, "key-1", validClaims), `error="invalid_token"`},
		{"signed by another key under a known kid", sign(t, jose.ES256, stranger, "key-1", validClaims), `error="invalid_token"`},
		{"the system's reserved name", sign(t, jose.ES256, k1, "key-1", system), `error="invalid_token"`},
		{"payload swapped", func() string {
			parts := strings.Split(sign(t, jose.ES256, k1, "key-1", good), ".")
			return parts[0] + "." + payload + "." + parts[2]
		}(), `error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				method, path string
				body         []byte
			}{
				{http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent())},
				{http.MethodGet, "/api/v1/audit/events", nil},
			} {
				res := f.send(http.DefaultClient, f.request(r.method, r.path, r.body, bearer(tc.token)))
				requireProblem(t, res, http.StatusUnauthorized, "unauthenticated")
				require.Contains(t, res.header.Get("WWW-Authenticate"), tc.challenge)
			}
		})
	}
	s.untouched(t, "bad JWTs")
	require.Equal(t, int64(1), is.fetches.Load(), "no bad token made the keys be fetched again")
}

// TestUnknownKeyID: a token with an unknown kid makes the JWKS be fetched
// once more and is then refused; a flood of unknown kids in the same
// interval fetches nothing; a key the issuer added is found on the first
// fetch after the interval.
func TestUnknownKeyID(t *testing.T) {
	is := newIssuer(t)
	clk := &clock{}
	s := &spies{}
	f := jwtFixture(t, is, clk, s, "")
	now := time.Now()
	c := is.claims("svc", now)
	c.Scope = "audit:read"
	res := f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events?limit=1", nil, bearer(sign(t, jose.ES256, is.key("key-1"), "key-1", c))))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, int64(1), is.fetches.Load())
	s.queried.Store(0)

	clk.advance(2 * time.Minute)
	forger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	res = f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events", nil, bearer(sign(t, jose.ES256, forger, "forged-0", c))))
	requireProblem(t, res, http.StatusUnauthorized, "unauthenticated")
	require.Equal(t, int64(2), is.fetches.Load(), "one refetch for the unknown kid")

	var wg sync.WaitGroup
	var unauthorized atomic.Int64
	for i := range 100 {
		wg.Go(func() {
			req := f.request(http.MethodGet, "/api/v1/audit/events", nil, bearer(sign(t, jose.ES256, forger, fmt.Sprintf("forged-%d", i+1), c)))
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusUnauthorized {
					unauthorized.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(100), unauthorized.Load())
	require.Equal(t, int64(2), is.fetches.Load(), "no refetch storm")
	s.untouched(t, "unknown kids")

	// Rotation: the issuer publishes key-2; within the interval it is not
	// known yet, after it the first token with it fetches the keys again.
	k2 := is.addKey(t, "key-2")
	rotated := sign(t, jose.ES256, k2, "key-2", c)
	requireProblem(t, f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events?limit=1", nil, bearer(rotated))),
		http.StatusUnauthorized, "unauthenticated")
	clk.advance(2 * time.Minute)
	res = f.send(http.DefaultClient, f.request(http.MethodGet, "/api/v1/audit/events?limit=1", nil, bearer(rotated)))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, int64(3), is.fetches.Load())
}
