package writer

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// TestBatchSpanLinksTheRecordsTraces: with tracing on, a batch is a span of
// a trace of its own, linked once to each trace its records carry (at most
// maxBatchLinks), with the store write and the dead-lettering as child
// spans; a dead letter keeps its traceparent byte for byte.
func TestBatchSpanLinksTheRecordsTraces(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	pub := &fakePublisher{}
	w := newTestWriter(t, &fakeStore{}, pub, 1000, time.Hour, func(c *Config) { c.Tracing = telemetry.TracingTo(tp) })

	// 300 records of 150 traces (two records each), and one without any.
	batch := items(301)
	traceOf := func(i int) string { return fmt.Sprintf("%032x", i+1) }
	for i := range 300 {
		batch[i].msg.Headers = []kafka.Header{
			{Key: []byte(kafka.HeaderSource), Value: []byte("ingest-api")},
			{Key: []byte(kafka.HeaderTraceParent), Value: fmt.Appendf(nil, "00-%s-%016x-01", traceOf(i/2), i+1)},
		}
	}
	batch[3].event, batch[3].poison = nil, "invalid audit event: bad"
	require.True(t, w.flush(&fakeSession{ctx: t.Context()}, batch, false))

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans.GetSpans().Snapshots() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	require.Len(t, byName["writer batch"], 1)
	b := byName["writer batch"][0]
	require.False(t, b.Parent().IsValid(), "a trace of its own")
	require.Len(t, b.Links(), maxBatchLinks, "bounded")
	seen := map[trace.TraceID]bool{}
	for i, l := range b.Links() {
		require.False(t, seen[l.SpanContext.TraceID()], "one link per trace")
		seen[l.SpanContext.TraceID()] = true
		require.Equal(t, traceOf(i), l.SpanContext.TraceID().String(), "in the records' order")
		require.Equal(t, fmt.Sprintf("%016x", 2*i+1), l.SpanContext.SpanID().String(), "the first record of the trace")
	}
	require.Len(t, byName["store write"], 1)
	require.Equal(t, b.SpanContext().SpanID(), byName["store write"][0].Parent().SpanID())
	require.Len(t, byName["send dlq"], 1)
	require.Equal(t, b.SpanContext().SpanID(), byName["send dlq"][0].Parent().SpanID())

	require.Len(t, pub.published, 1)
	dead := pub.published[0]
	require.Equal(t, batch[3].msg.Headers, dead.Headers[:2], "the original headers, traceparent included, byte for byte")
	l, ok := dlq.Parse(dead.Headers)
	require.True(t, ok)
	require.Equal(t, int64(1), l.OriginalOffset)
}

// TestTracingOffStartsNoSpan: off, the writer reads no trace context from
// its records and records no span (so its log lines carry no trace_id).
func TestTracingOffStartsNoSpan(t *testing.T) {
	w := newTestWriter(t, &fakeStore{}, &fakePublisher{}, 10, time.Hour)
	batch := items(2)
	batch[0].msg.Headers = []kafka.Header{{Key: []byte(kafka.HeaderTraceParent), Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}
	require.Nil(t, w.recordLinks(batch))
	_, span := w.tracer.Start(t.Context(), "writer batch")
	require.False(t, span.IsRecording())
	require.False(t, span.SpanContext().IsValid())
	require.True(t, w.flush(&fakeSession{ctx: t.Context()}, batch, false))
}
