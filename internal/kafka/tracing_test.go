package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/testenv"
)

func TestHeaderCarrierReplacesNeverAppends(t *testing.T) {
	hs := HeaderCarrier{
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte(HeaderTraceParent), Value: []byte("old")},
		{Key: []byte("b"), Value: []byte("2")},
		{Key: []byte(HeaderTraceParent), Value: []byte("older")},
	}
	require.Equal(t, "old", hs.Get(HeaderTraceParent), "the first of a repeated key")
	require.Empty(t, hs.Get("missing"))
	hs.Set(HeaderTraceParent, "new")
	hs.Set(HeaderTraceState, "k=v")
	require.Equal(t, HeaderCarrier{
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte(HeaderTraceParent), Value: []byte("new")},
		{Key: []byte("b"), Value: []byte("2")},
		{Key: []byte(HeaderTraceState), Value: []byte("k=v")},
	}, hs)
	require.Equal(t, []string{"a", HeaderTraceParent, "b", HeaderTraceState}, hs.Keys())
}

// TestOTELTracerSpansEveryRecord: with watermill-kafka's sarama tracer, each
// record of a Publish call gets a producer span, a child of the trace
// context the message carried, and its traceparent names that span; the
// header list the messages shared is not overwritten by one another's.
func TestOTELTracerSpansEveryRecord(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	// The tracer reads the globals, as telemetry.NewTracing sets them.
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	k := testenv.NewKafka(t, map[string]int32{"traced": 1})
	p, err := NewProducer(Config{Brokers: k.Brokers(), Version: "3.6.0", ClientID: "t", PublishTimeout: 3 * time.Second},
		nil, zap.NewNop(), prometheus.NewRegistry(), WithOTELTracer())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Connect(ctx))
	pub := NewPublisher(p)
	t.Cleanup(func() { require.NoError(t, pub.Close()) })

	parentCtx, parent := tp.Tracer("test").Start(t.Context(), "request")
	hs := []Header{{Key: []byte(HeaderSource), Value: []byte("ingest-api")}}
	otel.GetTextMapPropagator().Inject(parentCtx, (*HeaderCarrier)(&hs))
	require.NoError(t, pub.Publish("traced", NewMessage("1", []byte("k"), []byte("1"), hs), NewMessage("2", []byte("k"), []byte("2"), hs)))
	parent.End()

	recs, err := testenv.ConsumeAll(ctx, k.Brokers(), "traced", 2)
	require.NoError(t, err)
	recorded := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans.GetSpans().Snapshots() {
		recorded[s.SpanContext().SpanID()] = s
	}
	seen := map[string]bool{}
	for _, r := range recs {
		require.Len(t, r.Headers, 2)
		require.Equal(t, HeaderSource, r.Headers[0].Key, "the message's headers first, in order")
		require.Equal(t, HeaderTraceParent, r.Headers[1].Key)
		tp := string(r.Headers[1].Value)
		require.False(t, seen[tp], "each record names its own span: %s", tp)
		seen[tp] = true
		carrier := HeaderCarrier{{Key: []byte(HeaderTraceParent), Value: r.Headers[1].Value}}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &carrier))
		require.Equal(t, parent.SpanContext().TraceID(), sc.TraceID(), "the request's trace")
		span, ok := recorded[sc.SpanID()]
		require.True(t, ok, "traceparent names a recorded span")
		require.Equal(t, "traced publish", span.Name())
		require.Equal(t, trace.SpanKindProducer, span.SpanKind())
		require.Equal(t, parent.SpanContext().SpanID(), span.Parent().SpanID(), "a child of the message's trace context")
	}
}
