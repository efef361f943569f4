package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/telemetry"
)

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan   = "00f067aa0ba902b7"
	clientParent = "00-" + clientTrace + "-" + clientSpan + "-01"
)

// TestTracingFollowsTheRequestIntoTheRecords: with tracing on, a request
// that carries a traceparent is a server span of that trace, its publish a
// child span, and every record it publishes carries the publish span's
// context (and the caller's tracestate) after its other headers; the access
// log names the trace. A probe is not traced.
func TestTracingFollowsTheRequestIntoTheRecords(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	core, logs := observer.New(zap.InfoLevel)
	f := newFixture(t, func(_ *api.Config, d *api.Deps) {
		d.Tracing = telemetry.TracingTo(tp)
		d.Log = zap.New(core)
	})

	body, err := json.Marshal([]any{validEvent(), validEvent()})
	require.NoError(t, err)
	res := f.do(http.MethodPost, "/api/v1/audit/events/batch", "application/json", body,
		"traceparent", clientParent, "tracestate", "vendor=1")
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/health/live", "", nil, "traceparent", clientParent).status)

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.GetSpans().Snapshots() {
		byName[s.Name()] = s
	}
	require.Len(t, byName, 2, "the request and its publish, no probe: %v", byName)
	server := byName["POST /api/v1/audit/events/batch"]
	require.NotNil(t, server, "otelgin names the span after the route: %v", byName)
	require.Equal(t, trace.SpanKindServer, server.SpanKind())
	require.Equal(t, clientTrace, server.SpanContext().TraceID().String(), "the caller's trace")
	require.Equal(t, clientSpan, server.Parent().SpanID().String())
	send := byName["send "+f.eventsTopic]
	require.NotNil(t, send)
	require.Equal(t, server.SpanContext().SpanID(), send.Parent().SpanID())

	for _, rec := range f.consume(f.eventsTopic, 2) {
		require.Equal(t, []string{kafka.HeaderContentType, kafka.HeaderSource, kafka.HeaderPrincipal, kafka.HeaderTraceState, kafka.HeaderTraceParent},
			headerKeys(rec), "the record's headers, then the trace context as the propagator writes it")
		tp, _ := header(rec, kafka.HeaderTraceParent)
		require.Equal(t, "00-"+clientTrace+"-"+send.SpanContext().SpanID().String()+"-01", tp)
		ts, _ := header(rec, kafka.HeaderTraceState)
		require.Equal(t, "vendor=1", ts)
	}

	access := logs.FilterMessage("http request").FilterField(zap.String("trace_id", clientTrace))
	require.Equal(t, 1, access.Len(), "the traced request's access log line names its trace")
	require.Equal(t, 1, logs.FilterMessage("http request").FilterFieldKey("trace_id").Len(), "the probe's has no trace_id")
}

// TestTracingOffAddsNothing: off (the default), a traceparent from the
// caller goes nowhere: the records carry no trace header, and the access
// log no trace_id.
func TestTracingOffAddsNothing(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	f := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Log = zap.New(core) })
	body, err := json.Marshal(validEvent())
	require.NoError(t, err)
	res := f.do(http.MethodPost, "/api/v1/audit/events", "application/json", body, "traceparent", clientParent)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	rec := f.consume(f.eventsTopic, 1)[0]
	require.Equal(t, []string{kafka.HeaderContentType, kafka.HeaderSource, kafka.HeaderPrincipal}, headerKeys(rec))
	require.Equal(t, 1, logs.FilterMessage("http request").Len())
	require.Zero(t, logs.FilterFieldKey("trace_id").Len())
}

// TestTracingIntegrity: verify-chain and the export are spans of their
// requests, saying how many events they read and with what outcome.
func TestTracingIntegrity(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	f := newIntegrityFixture(t, func(_ *api.Config, d *api.Deps) { d.Tracing = telemetry.TracingTo(tp) })
	corr, _ := f.chain(t)
	res, body := f.verifyChain(t, corr)
	require.Equal(t, http.StatusOK, res.status)
	require.True(t, body.IsValid)
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/api/v1/audit/export?correlation_id="+corr, "", nil).status)

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.GetSpans().Snapshots() {
		byName[s.Name()] = s
	}
	for name, parent := range map[string]string{"verify-chain": "POST /api/v1/audit/verify-chain", "export": "GET /api/v1/audit/export"} {
		s, p := byName[name], byName[parent]
		require.NotNil(t, s, "%s: %v", name, byName)
		require.NotNil(t, p, "%s: %v", parent, byName)
		require.Equal(t, p.SpanContext().SpanID(), s.Parent().SpanID(), "%s is a child of its request", name)
		attrs := map[string]any{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		require.Equal(t, int64(5), attrs["auditstream.events"], name)
	}
}
