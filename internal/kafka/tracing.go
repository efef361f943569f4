package kafka

import (
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"go.opentelemetry.io/otel/propagation"
)

// W3C trace context headers (SPEC 12): written by the API, kept through the
// DLQ and replays, read by the writer.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// HeaderCarrier lets OpenTelemetry's propagation read and write trace
// context as record headers.
type HeaderCarrier []Header

var _ propagation.TextMapCarrier = (*HeaderCarrier)(nil)

// Get returns the value of the first header named key.
func (c *HeaderCarrier) Get(key string) string {
	for _, h := range *c {
		if string(h.Key) == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the header named key (headers are replaced, never
// appended), or adds it at the end. It rewrites the list in place: give it
// a list of your own, not one shared with other records.
func (c *HeaderCarrier) Set(key, value string) {
	out := (*c)[:0]
	set := false
	for _, h := range *c {
		if string(h.Key) != key {
			out = append(out, h)
		} else if !set {
			out = append(out, Header{Key: h.Key, Value: []byte(value)})
			set = true
		}
	}
	if !set {
		out = append(out, Header{Key: []byte(key), Value: []byte(value)})
	}
	*c = out
}

// Keys lists the header names.
func (c *HeaderCarrier) Keys() []string {
	keys := make([]string, len(*c))
	for i, h := range *c {
		keys[i] = string(h.Key)
	}
	return keys
}

// ProducerOption changes a Producer that NewProducer builds.
type ProducerOption func(*Producer)

// WithOTELTracer wraps the producer in watermill-kafka's OpenTelemetry
// sarama tracer (kafka.NewOTELSaramaTracer of watermill-kafka v3.1.4, which
// is github.com/dnwe/otelsarama): every record sent gets a producer span,
// "<topic> publish", a child of the trace context in the record's
// traceparent header, and that header is then replaced with the span's own
// context, moved to the end of the list. The tracer reads OpenTelemetry's
// global provider and propagator, which telemetry.NewTracing sets.
//
// It is for the API's records, not for dead letters: a dead letter keeps
// the original record's headers byte for byte (SPEC 6.1), traceparent
// included, and the tracer would rewrite it.
func WithOTELTracer() ProducerOption {
	return func(p *Producer) { p.tracer = wmkafka.NewOTELSaramaTracer() }
}
