package telemetry

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// TracingConfig is where a binary's spans go (SPEC 12).
type TracingConfig struct {
	// ServiceName is the service.name of every span.
	ServiceName string
	// Endpoint is the URL spans are posted to, OTLP over HTTP with
	// protobuf bodies; empty turns tracing off.
	Endpoint string
	// Headers are sent with every export (credentials of a hosted
	// collector, for instance).
	Headers map[string]string
}

// Tracing is a binary's OpenTelemetry tracing: spans exported over OTLP,
// and W3C trace context (traceparent, tracestate) read from requests and
// written to record headers. Off, the zero value (and a nil *Tracing)
// starts no span, exports nothing and writes no header: instrumented code
// asks Enabled and skips the work, so tracing off costs nothing.
type Tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
}

// propagator is the W3C trace context, and nothing else: the record
// headers a trace adds are traceparent and tracestate (no baggage).
var propagator = propagation.TraceContext{}

// NewTracing starts the exporter when cfg has an endpoint, and returns
// tracing off otherwise. Export failures are logged to log; they never
// fail a request or a batch.
//
// It also installs the provider and the propagator as OpenTelemetry's
// globals: watermill-kafka's sarama tracer, which wraps the API's producer,
// reads them. The process's own code is given this Tracing instead.
func NewTracing(ctx context.Context, cfg TracingConfig, log *zap.Logger) (*Tracing, error) {
	if cfg.Endpoint == "" {
		return &Tracing{}, nil
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint), otlptracehttp.WithHeaders(cfg.Headers))
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	// The default resource reads OTEL_RESOURCE_ATTRIBUTES; service.name is
	// the configured one (OTEL_SERVICE_NAME, else the binary's name).
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	// The batcher exports in the background; its queue bounds what waits
	// (OTEL_BSP_* apply), dropping spans rather than holding requests.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", zap.Error(err))
	}))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	log.Info("tracing on", zap.String("endpoint", cfg.Endpoint), zap.String("service", cfg.ServiceName))
	return &Tracing{provider: tp, shutdown: tp.Shutdown}, nil
}

// TracingTo is tracing with spans going to tp, for tests (an SDK provider
// with an in-memory exporter). It leaves the globals alone.
func TracingTo(tp trace.TracerProvider) *Tracing { return &Tracing{provider: tp} }

// Enabled reports whether spans are recorded.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Provider is the tracer provider: a no-op one when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if !t.Enabled() {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Tracer is the tracer of the instrumented package name.
func (t *Tracing) Tracer(name string) trace.Tracer { return t.Provider().Tracer(name) }

// Propagator reads and writes W3C trace context.
func (t *Tracing) Propagator() propagation.TextMapPropagator { return propagator }

// flushTimeout bounds the last export at exit: an unreachable collector
// must not hold a binary past its grace period.
const flushTimeout = 5 * time.Second

// Close exports the spans still queued, last thing before the binary
// exits; a failure is logged, not returned, since the work is done.
func (t *Tracing) Close(log *zap.Logger) {
	if t == nil || t.shutdown == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := t.shutdown(ctx); err != nil {
		log.Warn("traces not flushed", zap.Error(err))
	}
}

// TraceID is the trace_id log field of the span in ctx; no field when
// there is none (tracing off), so log lines stay as they were.
func TraceID(ctx context.Context) zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return zap.Skip()
	}
	return zap.String("trace_id", sc.TraceID().String())
}
