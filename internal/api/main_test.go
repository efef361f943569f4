package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/api/openapi/openapitest"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// shared is the infrastructure every test of the package uses: one broker,
// one PostgreSQL with the schema applied, one connected producer.
var shared struct {
	kafka    *testenv.Kafka
	pg       *testenv.Postgres
	db       *store.Store
	producer *kafka.Producer
	reader   *query.Reader
	doc      *openapi3.T
}

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "api tests", testmain.Both, func(ctx context.Context, e *testmain.Shared) error {
		shared.kafka, shared.pg = e.Kafka, e.Postgres
		var err error
		if _, err = store.Migrate(ctx, shared.pg.URL(), zap.NewNop()); err != nil {
			return err
		}
		if shared.db, err = store.Open(ctx, store.Config{URL: shared.pg.URL(), MaxConns: 4}); err != nil {
			return err
		}
		e.Cleanup(shared.db.Close)
		if shared.reader, err = query.NewReader(shared.db.Pool(), query.Config{StatementTimeout: 5 * time.Second, CountCap: 10000}); err != nil {
			return err
		}
		if shared.producer, err = newProducer(shared.kafka.Brokers(), 5*time.Second); err != nil {
			return err
		}
		if err = shared.producer.Connect(ctx); err != nil {
			return err
		}
		e.Cleanup(func() { _ = shared.producer.Close() })
		shared.doc, err = openapitest.Load(ctx)
		return err
	}))
}

func newProducer(brokers []string, timeout time.Duration) (*kafka.Producer, error) {
	cfg := kafkaClientConfig(brokers)
	cfg.PublishTimeout = timeout
	return kafka.NewProducer(cfg, nil, zap.NewNop(), prometheus.NewRegistry())
}

func kafkaClientConfig(brokers []string) kafka.Config {
	return kafka.Config{Brokers: brokers, Version: "3.6.0", ClientID: "api-test", PublishTimeout: 5 * time.Second}
}

var topicSeq atomic.Int64

// fullAccessToken is the API key of every fixture's tokens file, with every
// scope and no namespace restriction; do sends it unless a test says
// otherwise.
const fullAccessToken = "ast_fixture-full-access-token"

// fixture is one API server on a real listener with topics of its own, so
// what a test reads back from Kafka is exactly what it published. Its
// metrics are served apart, as METRICS_ADDR serves them.
type fixture struct {
	t                  testing.TB
	url                string
	metricsURL         string
	tokensFile         string
	eventsTopic        string
	notificationsTopic string
	brokers            []string
	health             *telemetry.Health
	registry           *prometheus.Registry
}

type fixtureOption func(*api.Config, *api.Deps)

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	return newFixtureServing(t, nil, opts...)
}

// newFixtureServing is newFixture serving HTTPS with tc when it is not
// nil (f.url is then https://).
func newFixtureServing(t testing.TB, tc *tls.Config, opts ...fixtureOption) *fixture {
	t.Helper()
	n := topicSeq.Add(1)
	f := &fixture{
		t:                  t,
		eventsTopic:        fmt.Sprintf("test.events.%d", n),
		notificationsTopic: fmt.Sprintf("test.notifications.%d", n),
		brokers:            shared.kafka.Brokers(),
		registry:           prometheus.NewRegistry(),
		tokensFile:         filepath.Join(t.TempDir(), "tokens.yaml"),
	}
	require.NoError(t, shared.kafka.CreateTopics(t.Context(), map[string]int32{f.eventsTopic: 3, f.notificationsTopic: 3}))
	f.health = telemetry.NewHealth(map[string]telemetry.Check{"kafka": shared.producer.Check, "postgresql": shared.db.Ping})
	f.health.SetReady()
	cfg := api.Config{
		Rules:                 audit.DefaultRules(),
		MaxBodyBytes:          1 << 20,
		MaxBatchBodyBytes:     16 << 20,
		EventsTopic:           f.eventsTopic,
		NotificationsTopic:    f.notificationsTopic,
		DuplicateCheckTimeout: 2 * time.Second,
	}
	writeTokens(t, f.tokensFile, auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes})
	deps := api.Deps{
		Publisher:     kafka.NewPublisher(shared.producer),
		Notifications: shared.db,
		Events:        shared.reader,
		Holds:         shared.db,
		Health:        f.health,
		Log:           zap.NewNop(),
		Registerer:    f.registry,
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	if deps.Auth == nil {
		authn, err := auth.New(auth.Config{TokensFile: f.tokensFile, FileCheckInterval: time.Millisecond}, zap.NewNop(), f.registry)
		require.NoError(t, err)
		deps.Auth = authn
	}
	h, err := api.NewHandler(cfg, deps)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	if tc != nil {
		// Our configuration as is: httptest's StartTLS would add its own
		// certificate.
		srv.Listener = tls.NewListener(srv.Listener, tc)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	f.url = srv.URL
	if tc != nil {
		f.url = "https://" + srv.Listener.Addr().String()
	}
	metrics := httptest.NewServer(telemetry.OpsMux(deps.Health, f.registry))
	t.Cleanup(metrics.Close)
	f.metricsURL = metrics.URL
	return f
}

// writeTokens writes a tokens file with entries.
func writeTokens(t testing.TB, path string, entries ...auth.TokenEntry) {
	t.Helper()
	require.NoError(t, auth.TokensFile{Tokens: entries}.WriteFile(path))
}

// response is an answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// do sends a request with the full-access token and checks the answer
// against the served OpenAPI document, so every test also proves the
// document tells the truth. header pairs override the defaults; an empty
// value removes the header (an empty Authorization sends none).
func (f *fixture) do(method, path, contentType string, body []byte, header ...string) response {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.url+path, bytes.NewReader(body))
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+fullAccessToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	return f.send(http.DefaultClient, req)
}

// send sends req with client, reads the answer and checks it against the
// OpenAPI document.
func (f *fixture) send(client *http.Client, req *http.Request) response {
	f.t.Helper()
	r, err := f.trySend(client, req)
	require.NoError(f.t, err)
	return r
}

// trySend is send for requests that may fail below HTTP (a refused TLS
// handshake).
func (f *fixture) trySend(client *http.Client, req *http.Request) (response, error) {
	f.t.Helper()
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: res.StatusCode, header: res.Header, body: b}
	method, path := req.Method, req.URL.Path
	// Routes the document does not describe (404s, 405s) have no contract.
	if _, err := openapitest.Operation(shared.doc, method, path); err == nil {
		require.NoError(f.t, openapitest.ValidateResponse(shared.doc, method, path, r.status, r.header, r.body),
			"response to %s %s does not match the OpenAPI document: %d %s", method, path, r.status, r.body)
	}
	return r, nil
}

func (f *fixture) postJSON(path string, body any) response {
	f.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		b, err = json.Marshal(body)
		require.NoError(f.t, err)
	}
	return f.do(http.MethodPost, path, "application/json", b)
}

// consume reads n records from topic.
func (f *fixture) consume(topic string, n int) []*kgo.Record {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), 20*time.Second)
	defer cancel()
	recs, err := testenv.ConsumeAll(ctx, f.brokers, topic, n)
	require.NoError(f.t, err)
	return recs
}

// validEvent is a complete, valid AuditEventRequest; tests change copies.
func validEvent() map[string]any {
	return map[string]any{
		"version":         "1.0",
		"event_type":      "gateway.signal.received",
		"event_timestamp": "2025-12-13T02:00Z",
		"event_category":  "gateway",
		"event_action":    "received",
		"event_outcome":   "success",
		"actor_type":      "service",
		"actor_id":        "gateway-service",
		"resource_type":   "Signal",
		"resource_id":     "fp-abc123",
		"correlation_id":  "rr-2025-001",
		"namespace":       "prod",
		"severity":        "info",
		"duration_ms":     12,
		"event_data":      map[string]any{"signal": "cpu-high", "labels": map[string]any{"pod": "xyz"}},
	}
}

func validNotification(id string) map[string]any {
	return map[string]any{
		"remediation_id":   "remediation-123",
		"notification_id":  id,
		"recipient":        "ops-team@example.com",
		"channel":          "email",
		"message_summary":  "Incident alert: High CPU usage on pod xyz",
		"status":           "sent",
		"sent_at":          "2025-11-03T12:00Z",
		"delivery_status":  "200 OK",
		"escalation_level": 1,
	}
}

// headerKeys lists the record's header names, in order.
func headerKeys(r *kgo.Record) []string {
	keys := make([]string, len(r.Headers))
	for i, h := range r.Headers {
		keys[i] = h.Key
	}
	return keys
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
