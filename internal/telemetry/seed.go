package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// SeedMetrics are the four metrics of the seed Data Storage API, exposed
// under their original names so existing dashboards keep working.
type SeedMetrics struct {
	// Traces counts records by service (event, notification) and status:
	// success, failure, or dlq_fallback (accepted without the duplicate check).
	Traces *prometheus.CounterVec
	// Lag observes how old an event is when it is accepted (ingest-api) or
	// stored (writer): now minus its event_timestamp.
	Lag *prometheus.HistogramVec
	// WriteDuration observes how long a durable write took, by destination
	// table: the Kafka acknowledgement in ingest-api, the COPY transaction in
	// the writer.
	WriteDuration *prometheus.HistogramVec
	// ValidationFailures counts rejected fields by field name and reason code.
	ValidationFailures *prometheus.CounterVec
}

// NewSeedMetrics registers the seed metrics on reg.
func NewSeedMetrics(reg prometheus.Registerer) *SeedMetrics {
	f := promauto.With(reg)
	return &SeedMetrics{
		Traces: f.NewCounterVec(prometheus.CounterOpts{
			Name: "datastorage_audit_traces_total",
			Help: "Audit records handled, by service and status (success, failure, dlq_fallback).",
		}, []string{"service", "status"}),
		Lag: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "datastorage_audit_lag_seconds",
			Help:    "Age of a record (now minus its event time) when accepted or stored.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}, []string{"service"}),
		WriteDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "datastorage_write_duration_seconds",
			Help:    "Duration of durable writes, by destination table.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"table"}),
		ValidationFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "datastorage_validation_failures_total",
			Help: "Rejected fields, by field name and reason code.",
		}, []string{"field", "reason"}),
	}
}
