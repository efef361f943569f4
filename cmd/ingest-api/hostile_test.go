package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestHostileRequestsThroughTheBinary replays issue 18's bad inputs against
// the real binary: each is a 4xx naming what is wrong (or, for what RFC
// 3339 and HTTP allow, a 201), never a 503, a silent drop or a poisoned
// record.
func TestHostileRequestsThroughTheBinary(t *testing.T) {
	_, err := store.Migrate(t.Context(), shared.pg.URL(), zap.NewNop())
	require.NoError(t, err)
	api := startAPI(t, "DATABASE_URL="+shared.pg.URL(), "MAX_BODY_BYTES=65536", "AUTH_DISABLED=true", "SOURCE_SIGNING_DISABLED=true")

	event := func(over map[string]any) map[string]any {
		ev := map[string]any{"version": "1.0", "event_type": "gateway.signal.received",
			"event_timestamp": time.Now().UTC().Format(time.RFC3339), "event_category": "gateway",
			"event_action": "received", "event_outcome": "success", "correlation_id": "hostile", "event_data": map[string]any{}}
		for k, v := range over {
			ev[k] = v
		}
		return ev
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, err := w.Write(b)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	dup := uuid.NewString()

	tests := []struct {
		name, method, path, encoding string
		body                         []byte
		status                       int
		want                         string // in the answer
	}{
		{"deep offset", "GET", "/api/v1/audit/events?offset=10000000", "", nil, 400, `"offset":"must be at most 10000; page deeper with cursor`},
		{"NUL in a filter", "GET", "/api/v1/audit/events?correlation_id=%00", "", nil, 400, `"correlation_id":"must not contain NUL characters"`},
		{"invalid UTF-8 in a filter", "GET", "/api/v1/audit/events?actor_id=%FF", "", nil, 400, `"actor_id":"must be valid UTF-8"`},
		{"event_id twice in a batch", "POST", "/api/v1/audit/events/batch", "",
			js([]any{event(map[string]any{"event_id": dup}), event(map[string]any{"event_id": dup})}), 400, `"[1].event_id":"is the same as [0].event_id`},
		{"number jsonb cannot store", "POST", "/api/v1/audit/events", "",
			[]byte(strings.Replace(string(js(event(nil))), `"event_data":{}`, `"event_data":{"x":1e200000}`, 1)), 400, `"event_data":"must not contain a number PostgreSQL cannot store`},
		{"offset +24:00", "POST", "/api/v1/audit/events", "", js(event(map[string]any{"event_timestamp": "2025-12-13T02:00:00+24:00"})), 400, `"event_timestamp"`},
		{"leap second", "POST", "/api/v1/audit/events", "", js(event(map[string]any{"event_timestamp": "2016-12-31T23:59:60Z"})), 201, `"event_timestamp":"2016-12-31T23:59:59.999999Z"`},
		{"gzip body", "POST", "/api/v1/audit/events", "gzip", gz(js(event(nil))), 201, `"message":"audit event accepted"`},
		{"plain body labelled br", "POST", "/api/v1/audit/events", "br", js(event(nil)), 415, `unsupported-media-type`},
		{"gzip bomb", "POST", "/api/v1/audit/events", "gzip", gz(bytes.Repeat([]byte(" "), 8<<20)), 413, `payload-too-large`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, api.base+tc.path, bytes.NewReader(tc.body))
			require.NoError(t, err)
			if tc.body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			require.NoError(t, err)
			require.Equal(t, tc.status, res.StatusCode, "%s", body)
			require.Contains(t, string(body), tc.want)
		})
	}

	t.Run("racing notifications", func(t *testing.T) {
		nid := "hostile-" + uuid.NewString()
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				n := fmt.Sprintf(`{"remediation_id":"r","notification_id":%q,"recipient":"ops@example.com","channel":"email",
					"message_summary":"attempt %d","status":"sent","sent_at":"2025-11-03T12:00Z"}`, nid, i)
				res, err := http.Post(api.base+"/api/v1/audit/notifications", "application/json", strings.NewReader(n))
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				mu.Lock()
				codes[res.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
		require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: 15}, codes)
	})
}

// TestOpenHealthNamesNoAddresses: with Kafka and PostgreSQL down, the
// binary's open /health names the components, not the broker address or
// the database's host and port; its log has them, once.
func TestOpenHealthNamesNoAddresses(t *testing.T) {
	k := testenv.NewKafka(t, nil)
	pg := testenv.NewPostgres(t)
	require.NoError(t, pg.Stop(t.Context()))
	api := startAPI(t, "KAFKA_BROKERS="+strings.Join(k.Brokers(), ","), "DATABASE_URL="+pg.URL(), "MIGRATE=false",
		"AUTH_DISABLED=true", "SOURCE_SIGNING_DISABLED=true")
	require.NoError(t, k.Close())

	var body string
	testenv.Await(t, 30*time.Second, "/health reports both down", func() (bool, string) {
		res, err := http.Get(api.base + "/health")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body = string(b)
		return strings.Contains(body, `"kafka":"down"`) && strings.Contains(body, `"postgresql":"down"`), body
	})
	require.JSONEq(t, `{"status":"unhealthy","error":"unavailable: kafka, postgresql (the service log has the details)",
		"checks":{"kafka":"down","postgresql":"down"},"auth":"disabled"}`, body)
	conn, err := pgconn.ParseConfig(pg.URL())
	require.NoError(t, err)
	for _, addr := range append(k.Brokers(), fmt.Sprintf("%s:%d", conn.Host, conn.Port), fmt.Sprint(conn.Port), "user=") {
		require.NotContains(t, body, addr)
	}
	testenv.Await(t, 10*time.Second, "the reason logged", func() (bool, string) {
		out := api.Stderr.String()
		return strings.Count(out, `"msg":"dependency check failing","component":"postgresql"`) == 1, api.Stderr.Tail(2048)
	})
}
