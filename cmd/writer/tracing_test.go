package main

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/testenv"
)

// TestTraceFromRequestToBatchSpan follows one request through the real
// binaries with tracing on, both exporting to an OTLP/HTTP receiver the
// test runs: the POST carries a traceparent; the API's spans join that
// trace; the record carries it; the writer's batch span, exported by the
// writer process, links to it; and both processes' log lines name their
// trace.
func TestTraceFromRequestToBatchSpan(t *testing.T) {
	p := newPipeline(t)
	otlp := testenv.NewOTLPReceiver(t)
	// A short export delay so the spans arrive while the test waits.
	tracing := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL(), "OTEL_BSP_SCHEDULE_DELAY=50"}
	// Signed principals, so the test also shows that the trace headers,
	// added after the signature, leave submitted_by verified.
	keys := "SOURCE_KEYS_FILE=" + testenv.NewSourceKeys(t)
	w := startWriter(t, p, "traced", append(tracing, "LOG_LEVEL=debug", keys, "SOURCE_SIGNING_DISABLED=false")...)
	w.awaitReady(30 * time.Second)
	api, apiOut := startAPI(t, p, append(tracing, keys)...)

	traceID := strings.ReplaceAll(uuid.NewString(), "-", "")
	event := fmt.Sprintf(`{"version":"1.0","event_type":%q,"event_timestamp":%q,"event_category":"gateway",
		"event_action":"received","event_outcome":"success","correlation_id":"trace-1","event_data":{}}`,
		p.tag, time.Now().UTC().Format(time.RFC3339))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, api+"/api/v1/audit/events", strings.NewReader(event))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)

	var batch testenv.ReceivedSpan
	testenv.Await(t, 30*time.Second, "the writer's batch span, linked to the request's trace", func() (bool, string) {
		for _, s := range otlp.Spans() {
			if s.Service != "writer" || s.GetName() != "writer batch" {
				continue
			}
			for _, l := range s.GetLinks() {
				if hex.EncodeToString(l.GetTraceId()) == traceID {
					batch = s
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d spans received", len(otlp.Spans()))
	})
	names := map[string]bool{}
	for _, s := range otlp.Spans() {
		if hex.EncodeToString(s.GetTraceId()) == traceID {
			require.Equal(t, "ingest-api", s.Service)
			names[s.GetName()] = true
		}
	}
	require.Equal(t, map[string]bool{
		"POST /api/v1/audit/events": true, // otelgin
		"send " + p.events:          true, // the API's publish
		p.events + " publish":       true, // watermill-kafka's sarama tracer
	}, names, "the API's spans of the request's trace")
	batchTrace := hex.EncodeToString(batch.GetTraceId())
	require.NotEqual(t, traceID, batchTrace, "a batch is a trace of its own")
	testenv.Await(t, 10*time.Second, "the COPY, a span of the batch's trace", func() (bool, string) {
		for _, s := range otlp.Spans() {
			if s.GetName() == "store write" && hex.EncodeToString(s.GetTraceId()) == batchTrace {
				return true, ""
			}
		}
		return false, "not yet"
	})

	var submittedBy string
	require.NoError(t, shared.db.QueryRow(t.Context(), "SELECT submitted_by FROM audit_events WHERE event_type = $1", p.tag).Scan(&submittedBy))
	require.Equal(t, "anonymous", submittedBy, "the principal's signature verified")

	require.Contains(t, apiOut.String(), `"trace_id":"`+traceID+`"`, "the access log names the request's trace")
	testenv.Await(t, 5*time.Second, "the writer's batch log line", func() (bool, string) {
		return strings.Contains(w.Stderr.String(), `"trace_id":"`+batchTrace+`"`), "not yet"
	})
}

// startAPI starts ingest-api for p with env added, waits until it is
// ready, and returns its base URL and output.
func startAPI(t *testing.T, p pipeline, env ...string) (string, *testenv.Output) {
	t.Helper()
	addr := testenv.NewAddr(t)
	proc := testenv.StartProcess(t, shared.apiBin, nil, append([]string{
		"KAFKA_BROKERS=" + strings.Join(shared.kafka.Brokers(), ","),
		"DATABASE_URL=" + shared.pg.URL(),
		"HTTP_ADDR=" + addr,
		"METRICS_ADDR=" + testenv.NewAddr(t),
		// Access control is the API tests' subject, not this one's.
		"AUTH_DISABLED=true",
		"EVENTS_TOPIC=" + p.events,
		"NOTIFICATIONS_TOPIC=" + p.notifications,
		"DLQ_TOPIC=" + p.dlq,
		"PARKED_TOPIC=" + p.parked,
		"TOPIC_PARTITIONS=" + strconv.Itoa(partitions),
		"SHUTDOWN_DELAY=0s",
		"LOG_FORMAT=json",
	}, env...)...)
	base := "http://" + addr
	testenv.Await(t, 30*time.Second, "ingest-api ready", func() (bool, string) {
		res, err := http.Get(base + "/health/ready")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})
	return base, proc.Stderr
}
