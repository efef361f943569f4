package audit

import (
	"strings"
	"testing"
)

var benchEvent = []byte(`{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2025-12-13T02:00:00.123Z",` +
	`"event_category":"gateway","event_action":"received","event_outcome":"success","actor_type":"service",` +
	`"actor_id":"gateway-service","resource_type":"Signal","resource_id":"fp-abc123","correlation_id":"rr-2025-001",` +
	`"parent_event_id":"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b","namespace":"prod","cluster_name":"eu-1","severity":"critical",` +
	`"duration_ms":42,"event_data":{"signal":{"fingerprint":"fp-abc123","labels":{"alertname":"HighCPU","pod":"xyz-7d9f"},` +
	`"value":97.5},"source":"prometheus","tags":["a","b","c"],"message":"CPU usage above 95% for 10m"}}`)

func BenchmarkParseEvent(b *testing.B) {
	r := DefaultRules()
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ParseEvent(benchEvent, acceptedAt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEventBatch1000(b *testing.B) {
	r := DefaultRules()
	elems := make([]string, 1000)
	for i := range elems {
		elems[i] = string(benchEvent)
	}
	raw := []byte("[" + strings.Join(elems, ",") + "]")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		evs, err := r.ParseEventBatch(raw, acceptedAt, DefaultMaxBatchSize)
		if err != nil || len(evs) != 1000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventMarshalJSON(b *testing.B) {
	ev, err := DefaultRules().ParseEvent(benchEvent, acceptedAt)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ev.MarshalJSON()
	}
}
