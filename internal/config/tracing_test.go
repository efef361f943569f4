package config

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/telemetry"
)

// TestTracingFromTheStandardVariables: tracing is off until an OTLP
// endpoint is set; a base URL gets /v1/traces, a traces URL is used as is;
// the service name defaults to the binary's.
func TestTracingFromTheStandardVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want telemetry.TracingConfig
	}{
		{name: "off when unset", want: telemetry.TracingConfig{ServiceName: "writer"}},
		{
			name: "base URL",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_SERVICE_NAME": "audit-writer"},
			want: telemetry.TracingConfig{ServiceName: "audit-writer", Endpoint: "http://collector:4318/v1/traces"},
		},
		{
			name: "traces URL wins, headers decoded",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://collector:4318",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otlp.example/api/traces",
				"OTEL_EXPORTER_OTLP_HEADERS":         "Authorization=Bearer%20s3cret, x-team = audit",
			},
			want: telemetry.TracingConfig{ServiceName: "writer", Endpoint: "https://otlp.example/api/traces",
				Headers: map[string]string{"Authorization": "Bearer s3cret", "x-team": "audit"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KAFKA_BROKERS", "k:9092")
			t.Setenv("DATABASE_URL", "postgres://db/audit")
			t.Setenv("SOURCE_SIGNING_DISABLED", "true")
			t.Setenv("SOURCE_SIGNING_DISABLED", "true")
			t.Setenv("INTEGRITY_DISABLED", "true")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var w Writer
			require.NoError(t, parse(t, &w))
			require.NoError(t, w.Tracing.Validate())
			require.Equal(t, tt.want, w.Tracing.Telemetry("writer"))
		})
	}
}

func TestTracingRefusesWhatCannotWork(t *testing.T) {
	tests := []struct {
		name    string
		tracing Tracing
		want    string
	}{
		{name: "not a URL", tracing: Tracing{Endpoint: "collector:4318"}, want: "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL"},
		{name: "no host", tracing: Tracing{TracesEndpoint: "http:///v1/traces"}, want: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{name: "header without value", tracing: Tracing{Headers: "a=1,s3cret"}, want: "entry 2 is not key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tracing.Validate()
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "s3cret", "a header value may be a credential")
		})
	}
	t.Setenv("KAFKA_BROKERS", "k:9092")
	t.Setenv("DATABASE_URL", "postgres://db/audit")
	t.Setenv("SOURCE_SIGNING_DISABLED", "true")
	var w Writer
	require.ErrorContains(t, parse(t, &w, "--otel-exporter-otlp-protocol", "grpc"), "http/protobuf")
	var api IngestAPI
	require.ErrorContains(t, parse(t, &api, "--otel-exporter-otlp-endpoint", "collector:4318"), "OTEL_EXPORTER_OTLP_ENDPOINT", "the binaries validate it")
}
