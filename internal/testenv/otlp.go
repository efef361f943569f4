package testenv

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPReceiver stands in for an OpenTelemetry collector: an OTLP/HTTP
// traces endpoint on a loopback port, for tests and benchmarks that run
// the binaries with tracing on. Point OTEL_EXPORTER_OTLP_ENDPOINT at URL.
type OTLPReceiver struct {
	srv *httptest.Server
	// keep decodes and keeps the spans; a sink only counts bytes.
	keep bool

	mu      sync.Mutex
	spans   []ReceivedSpan
	exports int
	bytes   int64
}

// ReceivedSpan is one exported span and the service.name of its resource.
type ReceivedSpan struct {
	Service string
	*tracepb.Span
}

// StartOTLPReceiver starts a receiver that keeps every span, or, when
// keep is false, a sink that reads and drops the exports (for a benchmark,
// where decoding would cost the measured machine CPU).
func StartOTLPReceiver(keep bool) *OTLPReceiver {
	r := &OTLPReceiver{keep: keep}
	r.srv = httptest.NewServer(http.HandlerFunc(r.export))
	return r
}

// URL is the base URL (the exporter posts to URL/v1/traces).
func (r *OTLPReceiver) URL() string { return r.srv.URL }

// Close stops the receiver.
func (r *OTLPReceiver) Close() { r.srv.Close() }

// Spans returns the spans received so far.
func (r *OTLPReceiver) Spans() []ReceivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ReceivedSpan(nil), r.spans...)
}

// Received returns how many exports and body bytes arrived.
func (r *OTLPReceiver) Received() (exports int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exports, r.bytes
}

func (r *OTLPReceiver) export(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var spans []ReceivedSpan
	if r.keep {
		var export coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &export); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range export.GetResourceSpans() {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, ReceivedSpan{Service: service, Span: s})
				}
			}
		}
	}
	r.mu.Lock()
	r.exports++
	r.bytes += int64(len(b))
	r.spans = append(r.spans, spans...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}
