package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/auditstream/auditstream/internal/telemetry"
)

// Tracing is OpenTelemetry trace export (SPEC 12), set by the standard
// OTEL_* variables and off unless an OTLP endpoint is given. The SDK reads
// the standard variables that have no flag here (OTEL_EXPORTER_OTLP_TIMEOUT,
// _COMPRESSION, _CERTIFICATE, OTEL_TRACES_SAMPLER, OTEL_BSP_*,
// OTEL_RESOURCE_ATTRIBUTES) itself, as the specification defines them.
type Tracing struct {
	Endpoint       string `name:"otel-exporter-otlp-endpoint" env:"OTEL_EXPORTER_OTLP_ENDPOINT" placeholder:"URL" help:"OTLP/HTTP base URL of a collector (spans go to <URL>/v1/traces); tracing is off while neither endpoint is set."`
	TracesEndpoint string `name:"otel-exporter-otlp-traces-endpoint" env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" placeholder:"URL" help:"OTLP/HTTP URL spans are posted to, as is (wins over the base URL)."`
	Headers        string `name:"otel-exporter-otlp-headers" env:"OTEL_EXPORTER_OTLP_HEADERS" placeholder:"K=V,..." help:"Headers sent with every export, comma-separated key=value pairs, values percent-encoded."`
	// Only the HTTP exporter is linked in: gRPC would add a gRPC stack to
	// every binary for a transport that collectors also serve over HTTP.
	Protocol    string `name:"otel-exporter-otlp-protocol" env:"OTEL_EXPORTER_OTLP_PROTOCOL" default:"http/protobuf" enum:"http/protobuf" help:"OTLP transport: http/protobuf (the collector's port 4318)."`
	ServiceName string `name:"otel-service-name" env:"OTEL_SERVICE_NAME" help:"service.name of the spans (default: the binary's name)."`
}

// Validate reports settings that cannot work.
func (t Tracing) Validate() error {
	var errs []error
	for name, u := range map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": t.Endpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": t.TracesEndpoint} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s must be an http:// or https:// URL, got %q", name, u))
		}
	}
	if _, err := parseOTLPHeaders(t.Headers); err != nil {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err))
	}
	return errors.Join(errs...)
}

// Telemetry returns where the spans of binary go; the endpoint is empty
// (tracing off) while neither variable is set. Call it after Validate.
func (t Tracing) Telemetry(binary string) telemetry.TracingConfig {
	endpoint := t.TracesEndpoint
	if endpoint == "" && t.Endpoint != "" {
		// The base URL gets the signal's path, as the specification says.
		endpoint = strings.TrimSuffix(t.Endpoint, "/") + "/v1/traces"
	}
	name := t.ServiceName
	if name == "" {
		name = binary
	}
	headers, _ := parseOTLPHeaders(t.Headers)
	return telemetry.TracingConfig{ServiceName: name, Endpoint: endpoint, Headers: headers}
}

// parseOTLPHeaders reads "k1=v1,k2=v2" with percent-encoded values.
func parseOTLPHeaders(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := make(map[string]string)
	for i, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			// Not quoted: a header value may be a credential.
			return nil, fmt.Errorf("entry %d is not key=value", i+1)
		}
		value, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("value of %s: %w", k, err)
		}
		out[k] = value
	}
	return out, nil
}
