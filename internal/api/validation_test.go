package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api"
)

// TestWriteRejections covers every kind of 400/413/415 answer over HTTP; the
// field-by-field rules themselves are tested in package audit.
func TestWriteRejections(t *testing.T) {
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	with := func(k string, v any) []byte {
		ev := validEvent()
		ev[k] = v
		b, _ := json.Marshal(ev)
		return b
	}
	without := func(keys ...string) []byte {
		ev := validEvent()
		for _, k := range keys {
			delete(ev, k)
		}
		b, _ := json.Marshal(ev)
		return b
	}
	// raw replaces a marker in a valid event's JSON, for bytes json.Marshal
	// would never produce.
	raw := func(field, literal string) []byte {
		ev := validEvent()
		ev[field] = "MARKER"
		b, _ := json.Marshal(ev)
		return bytes.Replace(b, []byte(`"MARKER"`), []byte(literal), 1)
	}
	tests := []struct {
		name        string
		path        string
		contentType string
		body        []byte
		status      int
		problem     string
		fieldErrors map[string]string
	}{
		{
			name: "missing required fields", path: "/api/v1/audit/events", body: without("version", "event_data"),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{"version": "is required", "event_data": "is required"},
		},
		{
			name: "bad enum and too long", path: "/api/v1/audit/events",
			body: func() []byte {
				ev := validEvent()
				ev["event_outcome"] = "maybe"
				ev["version"] = strings.Repeat("v", 21)
				b, _ := json.Marshal(ev)
				return b
			}(),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{
				"event_outcome": "must be one of: success, failure, pending",
				"version":       "must be at most 20 characters",
			},
		},
		{
			name: "future timestamp", path: "/api/v1/audit/events", body: with("event_timestamp", future),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{"event_timestamp": "must not be more than 5m0s in the future"},
		},
		{
			name: "NUL inside event_data", path: "/api/v1/audit/events", body: raw("event_data", `{"a":"x\u0000y"}`),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{"event_data": "must not contain NUL characters"},
		},
		{
			name: "invalid UTF-8 in a field", path: "/api/v1/audit/events", body: raw("actor_id", "\"a\xffb\""),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{"actor_id": "must be valid UTF-8"},
		},
		{
			name: "batch names every bad element", path: "/api/v1/audit/events/batch",
			body: func() []byte {
				bad1, bad2 := validEvent(), validEvent()
				delete(bad1, "correlation_id")
				bad2["event_category"] = "unknown"
				b, _ := json.Marshal([]any{validEvent(), bad1, validEvent(), bad2})
				return b
			}(),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{
				"[1].correlation_id": "is required",
				"[3].event_category": "must be one of: gateway, notification, analysis, signalprocessing, workflow, execution, orchestration",
			},
		},
		{name: "empty batch", path: "/api/v1/audit/events/batch", body: []byte(`[]`), status: 400, problem: "malformed-request"},
		{name: "batch that is not an array", path: "/api/v1/audit/events/batch", body: with("x", 1), status: 400, problem: "malformed-request"},
		{name: "malformed JSON", path: "/api/v1/audit/events", body: []byte(`{"version": "1.0",`), status: 400, problem: "malformed-request"},
		{name: "empty body", path: "/api/v1/audit/events", body: nil, status: 400, problem: "malformed-request"},
		{name: "not an object", path: "/api/v1/audit/events", body: []byte(`[1]`), status: 400, problem: "malformed-request"},
		{name: "wrong content type", path: "/api/v1/audit/events", contentType: "text/plain", body: with("x", 1), status: 415, problem: "unsupported-media-type"},
		{name: "notification validation", path: "/api/v1/audit/notifications",
			body: func() []byte {
				n := validNotification("n-1")
				n["channel"] = "fax"
				n["escalation_level"] = 6
				delete(n, "recipient")
				b, _ := json.Marshal(n)
				return b
			}(),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{
				"channel":          "must be one of: email, slack, pagerduty, webhook, teams",
				"escalation_level": "must be an integer between 0 and 5",
				"recipient":        "is required",
			},
		},
	}
	f := newFixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			res := f.do(http.MethodPost, tc.path, ct, tc.body)
			require.Equal(t, tc.status, res.status, "%s", res.body)
			require.Equal(t, "application/problem+json", res.header.Get("Content-Type"))
			p := res.json(t)
			require.Equal(t, "https://auditstream.dev/problems/"+tc.problem, p["type"])
			require.Equal(t, tc.path, p["instance"])
			require.NotEmpty(t, p["detail"])
			if tc.fieldErrors != nil {
				got := map[string]string{}
				for k, v := range p["field_errors"].(map[string]any) {
					got[k] = v.(string)
				}
				require.Equal(t, tc.fieldErrors, got)
			}
		})
	}
}

func TestBodyLimitsAnswer413(t *testing.T) {
	f := newFixture(t, func(c *api.Config, _ *api.Deps) { c.MaxBodyBytes, c.MaxBatchBodyBytes = 2048, 4096 })
	big := validEvent()
	big["event_data"] = map[string]any{"blob": strings.Repeat("x", 3000)}
	res := f.postJSON("/api/v1/audit/events", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.status, "%s", res.body)
	require.Equal(t, "https://auditstream.dev/problems/payload-too-large", res.json(t)["type"])

	// Within the batch limit although above the single-record one.
	res = f.postJSON("/api/v1/audit/events/batch", []any{big})
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	res = f.postJSON("/api/v1/audit/events/batch", []any{big, big})
	require.Equal(t, http.StatusRequestEntityTooLarge, res.status, "%s", res.body)

	// A body sent without Content-Length is cut off at the limit too.
	b, _ := json.Marshal(big)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/api/v1/audit/events", struct{ *bytes.Reader }{bytes.NewReader(b)})
	require.NoError(t, err)
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+fullAccessToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func TestMissingContentTypeIsAccepted(t *testing.T) {
	f := newFixture(t)
	b, _ := json.Marshal(validEvent())
	res := f.do(http.MethodPost, "/api/v1/audit/events", "", b)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	res = f.do(http.MethodPost, "/api/v1/audit/events", "application/json; charset=utf-8", b)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
}
