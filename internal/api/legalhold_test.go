package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/provenance"
	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/testenv"
)

func holdBody(corr, reason string) []byte {
	return []byte(fmt.Sprintf(`{"correlation_id":%q,"reason":%q}`, corr, reason))
}

func releasePath(corr string) string { return "/api/v1/audit/legal-hold/" + url.PathEscape(corr) }

// systemRules parse the system's own events, as the writer does.
func systemRules() audit.Rules {
	r := audit.DefaultRules()
	r.AcceptSystemCategory = true
	return r
}

// TestLegalHold: place, list and release with the seed system's shapes,
// each recorded as an auditstream event signed as the system, and the
// issue's bad input.
func TestLegalHold(t *testing.T) {
	keys := sourceKeyring(t)
	f := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Signer = keys })
	corr := "hold/" + uuid.NewString() // a "/" travels escaped in the release path
	storeEvents(t, corr, nil, strp("prod"))

	// Bad input first: nothing is placed by any of it.
	res := f.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", holdBody("unknown-"+uuid.NewString(), "r"))
	requireProblem(t, res, http.StatusNotFound, "not-found")
	res = f.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", holdBody(corr, strings.Repeat("x", 10<<10)))
	p := requireProblem(t, res, http.StatusBadRequest, "validation-error")
	require.Equal(t, map[string]any{"reason": "must be at most 1000 characters"}, p["field_errors"])
	res = f.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", []byte(`{"correlation_id":"`+corr+`"}`))
	p = requireProblem(t, res, http.StatusBadRequest, "validation-error")
	require.Equal(t, map[string]any{"reason": "is required"}, p["field_errors"])
	res = f.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", []byte(`{"reason":"r"}`))
	requireProblem(t, res, http.StatusBadRequest, "validation-error")
	res = f.do(http.MethodPost, "/api/v1/audit/legal-hold", "text/plain", holdBody(corr, "r"))
	requireProblem(t, res, http.StatusUnsupportedMediaType, "unsupported-media-type")
	res = f.do(http.MethodDelete, releasePath(corr), "application/json", []byte(`{"release_reason":"nothing held"}`))
	requireProblem(t, res, http.StatusNotFound, "not-found")
	require.Empty(t, holdsOf(t, f, corr))

	before := time.Now().Add(-time.Second)
	res = f.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", holdBody(corr, "Litigation hold, case 41"))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	placed := res.json(t)
	require.Equal(t, corr, placed["correlation_id"])
	require.EqualValues(t, 2, placed["events_affected"])
	require.Equal(t, "fixture", placed["placed_by"], "the authenticated principal")
	require.Equal(t, "Litigation hold, case 41", placed["reason"])
	placedAt, err := time.Parse(time.RFC3339Nano, placed["placed_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), placedAt, time.Minute)

	res = f.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", holdBody(corr, "again"))
	requireProblem(t, res, http.StatusConflict, "legal-hold-exists")

	listed := holdsOf(t, f, corr)
	require.Len(t, listed, 1)
	require.Equal(t, placed, listed[0])

	res = f.do(http.MethodDelete, releasePath(corr), "application/json", []byte(`{}`))
	p = requireProblem(t, res, http.StatusBadRequest, "validation-error")
	require.Equal(t, map[string]any{"release_reason": "is required"}, p["field_errors"])
	res = f.do(http.MethodDelete, releasePath(corr), "application/json", []byte(`{"release_reason":"`+strings.Repeat("x", 10<<10)+`"}`))
	requireProblem(t, res, http.StatusBadRequest, "validation-error")
	res = f.do(http.MethodDelete, releasePath(corr), "application/json", []byte(`{"release_reason":"Case 41 closed"}`))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	released := res.json(t)
	require.Equal(t, corr, released["correlation_id"])
	require.EqualValues(t, 2, released["events_released"])
	require.Equal(t, "fixture", released["released_by"])
	require.NotEmpty(t, released["released_at"])
	require.Empty(t, holdsOf(t, f, corr))
	res = f.do(http.MethodDelete, releasePath(corr), "application/json", []byte(`{"release_reason":"twice"}`))
	requireProblem(t, res, http.StatusNotFound, "not-found")

	// Both are on the events topic as the system's own events, in the
	// legal hold chain, naming who acted.
	recs := f.consume(f.eventsTopic, 2)
	for i, want := range []struct{ typ, action, reasonKey, reason string }{
		{selfaudit.TypeHoldPlaced, "place", "reason", "Litigation hold, case 41"},
		{selfaudit.TypeHoldReleased, "release", "release_reason", "Case 41 closed"},
	} {
		rec := recs[i]
		ev, err := systemRules().ParseEvent(rec.Value, time.Now())
		require.NoError(t, err)
		require.Equal(t, selfaudit.LegalHoldChain, string(rec.Key))
		require.Equal(t, audit.SystemCategory, ev.EventCategory)
		require.Equal(t, want.typ, ev.EventType)
		require.Equal(t, want.action, ev.EventAction)
		require.Equal(t, "fixture", *ev.ActorID)
		require.Equal(t, corr, *ev.ResourceID)
		require.Contains(t, string(ev.EventData), want.reason)
		require.False(t, ev.EventTimestamp.Before(before.Truncate(time.Second)))
		var hs []kafka.Header
		for _, h := range rec.Headers {
			hs = append(hs, kafka.Header{Key: []byte(h.Key), Value: h.Value})
		}
		require.Equal(t, audit.SystemPrincipal, keys.SubmittedBy(hs, ev.EventID.String(), rec.Value),
			"signed, so the writer stores the system as submitter")
	}

	// A client may not write the system's category.
	ev := validEvent()
	ev["event_category"] = audit.SystemCategory
	res = f.postJSON("/api/v1/audit/events", ev)
	p = requireProblem(t, res, http.StatusBadRequest, "validation-error")
	require.Contains(t, p["field_errors"].(map[string]any)["event_category"], "reserved")
}

// holdsOf lists the holds in force on corr (the shared database holds
// other tests' too), checking the list's total.
func holdsOf(t *testing.T, f *fixture, corr string) []map[string]any {
	t.Helper()
	res := f.do(http.MethodGet, "/api/v1/audit/legal-hold", "", nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	body := res.json(t)
	all := body["holds"].([]any)
	require.EqualValues(t, len(all), body["total"])
	var out []map[string]any
	for _, h := range all {
		if m := h.(map[string]any); m["correlation_id"] == corr {
			out = append(out, m)
		}
	}
	return out
}

type failingPublisher struct{}

func (failingPublisher) Publish(string, ...*message.Message) error {
	return &kafka.PublishError{Total: 1, Failed: 1, Err: errors.New("no leader")}
}

func (failingPublisher) Close() error { return nil }

// TestLegalHoldWithoutKafka: when the audit event of a placement cannot be
// published, the hold is not placed (503), and a release likewise keeps
// the hold.
func TestLegalHoldWithoutKafka(t *testing.T) {
	f := newFixture(t)
	down := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Publisher = failingPublisher{} })
	corr := "hold-" + uuid.NewString()
	storeEvents(t, corr, nil)

	res := down.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", holdBody(corr, "r"))
	requireProblem(t, res, http.StatusServiceUnavailable, "kafka-unavailable")
	require.NotEmpty(t, res.header.Get("Retry-After"))
	require.Empty(t, holdsOf(t, f, corr), "nothing placed")

	require.Equal(t, http.StatusOK, f.do(http.MethodPost, "/api/v1/audit/legal-hold", "application/json", holdBody(corr, "r")).status)
	res = down.do(http.MethodDelete, releasePath(corr), "application/json", []byte(`{"release_reason":"r"}`))
	requireProblem(t, res, http.StatusServiceUnavailable, "kafka-unavailable")
	require.Len(t, holdsOf(t, f, corr), 1, "still held")
	require.Equal(t, http.StatusOK, f.do(http.MethodDelete, releasePath(corr), "application/json", []byte(`{"release_reason":"r"}`)).status)
}

// TestLegalHoldNamespaces: a credential limited to namespaces may not use
// holds, which span every namespace.
func TestLegalHoldNamespaces(t *testing.T) {
	f := newFixture(t)
	writeTokens(t, f.tokensFile,
		auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes},
		auth.TokenEntry{Name: "team", SHA256: auth.TokenSHA256("ast_team"), Scopes: auth.AllScopes, Namespaces: []string{"prod"}})
	awaitToken(t, f, "ast_team")
	corr := "hold-" + uuid.NewString()
	storeEvents(t, corr, strp("prod"))
	for _, r := range []struct {
		method, path string
		body         []byte
	}{
		{http.MethodPost, "/api/v1/audit/legal-hold", holdBody(corr, "r")},
		{http.MethodGet, "/api/v1/audit/legal-hold", nil},
		{http.MethodDelete, releasePath(corr), []byte(`{"release_reason":"r"}`)},
	} {
		res := f.send(http.DefaultClient, f.request(r.method, r.path, r.body, bearer("ast_team")))
		p := requireProblem(t, res, http.StatusForbidden, "forbidden")
		require.Contains(t, p["detail"], "every namespace")
	}
	require.Empty(t, holdsOf(t, f, corr))
}

// sourceKeyring is a source key set, as the API and the writer share it.
func sourceKeyring(t *testing.T) *provenance.Keys {
	t.Helper()
	keys, err := provenance.Load(testenv.NewSourceKeys(t))
	require.NoError(t, err)
	return keys
}
