package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/kafka"
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
			name: "offset beyond 23:59", path: "/api/v1/audit/events", body: with("event_timestamp", "2025-12-13T02:00:00+24:00"),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{"event_timestamp": "must be an RFC 3339 date-time with a UTC offset, e.g. 2025-12-13T02:00:00Z"},
		},
		{
			name: "NUL inside event_data", path: "/api/v1/audit/events", body: raw("event_data", `{"a":"x\u0000y"}`),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{"event_data": "must not contain NUL characters"},
		},
		{
			name: "number PostgreSQL cannot store in event_data", path: "/api/v1/audit/events", body: raw("event_data", `{"a":{"b":[1,1e200000]}}`),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{"event_data": "must not contain a number PostgreSQL cannot store (at most 131072 digits before the decimal point and 16383 after)"},
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
		{
			name: "batch repeating an event_id", path: "/api/v1/audit/events/batch",
			body: func() []byte {
				dup := validEvent()
				dup["event_id"] = "0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"
				b, _ := json.Marshal([]any{dup, validEvent(), validEvent(), dup})
				return b
			}(),
			status: 400, problem: "validation-error",
			fieldErrors: map[string]string{
				"[0].event_id": "is the same as [3].event_id; event_ids in a batch must be distinct",
				"[3].event_id": "is the same as [0].event_id; event_ids in a batch must be distinct",
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

// TestRecordTooLargeForKafkaAnswers413: an event within the API's limits
// whose record Kafka cannot take (over KAFKA_MAX_MESSAGE_BYTES) is a client
// error that no retry fixes: 413, not 503.
func TestRecordTooLargeForKafkaAnswers413(t *testing.T) {
	f := newFixture(t, func(c *api.Config, _ *api.Deps) { c.Rules.MaxEventDataBytes = 1 << 20 })
	big := validEvent()
	big["event_data"] = map[string]any{"blob": strings.Repeat("x", kafka.DefaultMaxMessageBytes)}
	res := f.postJSON("/api/v1/audit/events", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.status, "%s", res.body)
	body := res.json(t)
	require.Equal(t, "https://auditstream.dev/problems/payload-too-large", body["type"])
	require.Contains(t, body["detail"], "KAFKA_MAX_MESSAGE_BYTES")
	require.Empty(t, res.header.Get("Retry-After"))
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

// TestLeapSecondsAreAccepted: RFC 3339 allows 23:59:60 at the end of a
// month; it is stored as the last microsecond of that day (23:59:59.999999),
// and the answer says so.
func TestLeapSecondsAreAccepted(t *testing.T) {
	f := newFixture(t)
	ev := validEvent()
	ev["event_timestamp"] = "2016-12-31T15:59:60.25-08:00"
	res := f.postJSON("/api/v1/audit/events", ev)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.Equal(t, "2016-12-31T23:59:59.999999Z", res.json(t)["event_timestamp"])
	var value map[string]any
	require.NoError(t, json.Unmarshal(f.consume(f.eventsTopic, 1)[0].Value, &value))
	require.Equal(t, "2016-12-31T23:59:59.999999Z", value["event_timestamp"], "the record carries what the client was told")

	n := validNotification("leap-" + time.Now().Format(time.RFC3339Nano))
	n["sent_at"] = "2016-12-31T23:59:60Z"
	res = f.postJSON("/api/v1/audit/notifications", n)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.Equal(t, "2016-12-31T23:59:59.999999Z", res.json(t)["sent_at"])
}

// TestContentEncoding: gzip bodies are decoded and the body limits apply to
// what they decode to, so a small bomb is a 413; identity is no encoding;
// any other coding is a 415 that says what the server accepts.
func TestContentEncoding(t *testing.T) {
	f := newFixture(t, func(c *api.Config, _ *api.Deps) { c.MaxBodyBytes, c.MaxBatchBodyBytes = 16<<10, 64<<10 })
	event, err := json.Marshal(validEvent())
	require.NoError(t, err)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, err := w.Write(b)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	big := validEvent()
	big["event_data"] = map[string]any{"blob": strings.Repeat("x", 20<<10)} // compresses to well under the limit
	bigEvent, err := json.Marshal(big)
	require.NoError(t, err)
	bomb := gz(bytes.Repeat([]byte(" "), 16<<20)) // 16 MiB of whitespace in ~16 KiB
	require.Less(t, len(bomb), 64<<10, "within the batch limit as sent")

	tests := []struct {
		name, path, encoding string
		body                 []byte
		status               int
		problem              string
	}{
		{"gzip event", "/api/v1/audit/events", "gzip", gz(event), http.StatusCreated, ""},
		{"gzip in capitals", "/api/v1/audit/events", "GZIP", gz(event), http.StatusCreated, ""},
		{"x-gzip", "/api/v1/audit/events", "x-gzip", gz(event), http.StatusCreated, ""},
		{"gzip batch", "/api/v1/audit/events/batch", "gzip", gz([]byte("[" + string(event) + "," + string(event) + "]")), http.StatusCreated, ""},
		{"gzip notification", "/api/v1/audit/notifications", "gzip", gz(mustJSON(t, validNotification("gz-"+uuid.NewString()))), http.StatusCreated, ""},
		{"identity", "/api/v1/audit/events", "identity", event, http.StatusCreated, ""},
		{"identity then gzip", "/api/v1/audit/events", "identity, gzip", gz(event), http.StatusCreated, ""},
		{"brotli", "/api/v1/audit/events", "br", event, http.StatusUnsupportedMediaType, "unsupported-media-type"},
		{"deflate", "/api/v1/audit/events", "deflate", event, http.StatusUnsupportedMediaType, "unsupported-media-type"},
		{"gzip twice", "/api/v1/audit/events", "gzip, gzip", gz(gz(event)), http.StatusUnsupportedMediaType, "unsupported-media-type"},
		{"not gzip at all", "/api/v1/audit/events", "gzip", event, http.StatusBadRequest, "malformed-request"},
		{"truncated gzip", "/api/v1/audit/events", "gzip", gz(event)[:40], http.StatusBadRequest, "malformed-request"},
		{"decoded past the limit", "/api/v1/audit/events", "gzip", gz(bigEvent), http.StatusRequestEntityTooLarge, "payload-too-large"},
		{"bomb", "/api/v1/audit/events/batch", "gzip", bomb, http.StatusRequestEntityTooLarge, "payload-too-large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := f.do(http.MethodPost, tc.path, "application/json", tc.body, "Content-Encoding", tc.encoding)
			require.Equal(t, tc.status, res.status, "%s", res.body)
			if tc.problem == "" {
				return
			}
			require.Equal(t, "https://auditstream.dev/problems/"+tc.problem, res.json(t)["type"])
			if tc.status == http.StatusUnsupportedMediaType {
				require.Equal(t, "gzip, identity", res.header.Get("Accept-Encoding"), "RFC 7694: say which codings are accepted")
			}
		})
	}
	rec := f.consume(f.eventsTopic, 1)[0]
	var value map[string]any
	require.NoError(t, json.Unmarshal(rec.Value, &value))
	require.Equal(t, "rr-2025-001", value["correlation_id"], "a decoded body is published like a plain one")
}
