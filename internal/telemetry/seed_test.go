package telemetry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestSeedMetricsLabels: each method moves the seed series the seed API's
// dashboards read, under the seed's label values.
func TestSeedMetricsLabels(t *testing.T) {
	tests := []struct {
		name   string
		record func(m *SeedMetrics)
		want   string // the series, in the text format
	}{
		{"event written", func(m *SeedMetrics) { m.Written(SeedEvent, 3, time.Millisecond) }, `
datastorage_audit_traces_total{service="event",status="success"} 3
datastorage_write_duration_seconds_count{table="audit_events"} 1`},
		{"notification written", func(m *SeedMetrics) { m.Written(SeedNotification, 1, time.Millisecond) }, `
datastorage_audit_traces_total{service="notification",status="success"} 1
datastorage_write_duration_seconds_count{table="notification_audit"} 1`},
		{"failed", func(m *SeedMetrics) { m.Failed(SeedEvent, 2); m.Failed(SeedNotification, 1) }, `
datastorage_audit_traces_total{service="event",status="failure"} 2
datastorage_audit_traces_total{service="notification",status="failure"} 1`},
		{"fallback", func(m *SeedMetrics) { m.AcceptedWithoutDuplicateCheck(SeedNotification) }, `
datastorage_audit_traces_total{service="notification",status="dlq_fallback"} 1`},
		{"lag", func(m *SeedMetrics) { m.Lag(SeedEvent).Observe(1); m.Lag(SeedNotification).Observe(2) }, `
datastorage_audit_lag_seconds_count{service="event"} 1
datastorage_audit_lag_seconds_count{service="notification"} 1`},
		{"validation", func(m *SeedMetrics) { m.ValidationFailure("event_type", "required") }, `
datastorage_validation_failures_total{field="event_type",reason="required"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			tt.record(NewSeedMetrics(reg))
			got := series(t, reg)
			for _, line := range strings.Split(strings.TrimSpace(tt.want), "\n") {
				require.Contains(t, got, line)
			}
		})
	}
}

// series renders reg's samples one a line, without HELP and TYPE.
func series(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	var out []string
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			name, value := f.GetName(), 0.0
			switch {
			case m.GetCounter() != nil:
				value = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				name += "_count"
				value = float64(m.GetHistogram().GetSampleCount())
			}
			out = append(out, name+"{"+strings.Join(labels, ",")+"} "+fmt.Sprint(value))
		}
	}
	return out
}
