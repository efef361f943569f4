package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// SeedRecord is the kind of record a seed metric is about: the seed API's
// service label and the table the record is stored in. The two go together
// (an event is stored in audit_events, a notification in
// notification_audit), so callers name the kind and never spell a label.
type SeedRecord struct {
	service, table string
	// kind indexes SeedMetrics.series.
	kind int
}

// The two kinds of record, the only values of the service and table labels.
var (
	SeedEvent        = SeedRecord{service: "event", table: "audit_events", kind: 0}
	SeedNotification = SeedRecord{service: "notification", table: "notification_audit", kind: 1}
	seedRecords      = []SeedRecord{SeedEvent, SeedNotification}
)

// Values of the status label of datastorage_audit_traces_total.
const (
	seedSuccess = "success"
	seedFailure = "failure"
	// seedFallback: a notification accepted without the duplicate check,
	// PostgreSQL being unreachable (the seed's name for it).
	seedFallback = "dlq_fallback"
)

// SeedMetrics are the four metrics of the seed Data Storage API, exposed
// under their original names so existing dashboards keep working.
type SeedMetrics struct {
	// traces counts records by service and status.
	traces *prometheus.CounterVec
	// lag observes how old a record is when it is accepted (ingest-api) or
	// stored (writer): now minus its event time.
	lag *prometheus.HistogramVec
	// writeDuration observes how long a durable write took, by destination
	// table: the Kafka acknowledgement in ingest-api, the COPY transaction
	// in the writer.
	writeDuration *prometheus.HistogramVec
	// validationFailures counts rejected fields by field name and reason.
	validationFailures *prometheus.CounterVec
	// series are each kind's series, looked up once: resolving labels
	// hashes them under a lock, on every request of the API.
	series []seedSeries
}

type seedSeries struct {
	success, failure, fallback prometheus.Counter
	lag, writeDuration         prometheus.Observer
}

// NewSeedMetrics registers the seed metrics on reg.
func NewSeedMetrics(reg prometheus.Registerer) *SeedMetrics {
	f := promauto.With(reg)
	m := &SeedMetrics{
		traces: f.NewCounterVec(prometheus.CounterOpts{
			Name: "datastorage_audit_traces_total",
			Help: "Audit records handled, by service and status (success, failure, dlq_fallback).",
		}, []string{"service", "status"}),
		lag: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "datastorage_audit_lag_seconds",
			Help:    "Age of a record (now minus its event time) when accepted or stored.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}, []string{"service"}),
		writeDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "datastorage_write_duration_seconds",
			Help:    "Duration of durable writes, by destination table.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"table"}),
		validationFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "datastorage_validation_failures_total",
			Help: "Rejected fields, by field name and reason code.",
		}, []string{"field", "reason"}),
	}
	for _, r := range seedRecords {
		m.series = append(m.series, seedSeries{
			success:       m.traces.WithLabelValues(r.service, seedSuccess),
			failure:       m.traces.WithLabelValues(r.service, seedFailure),
			fallback:      m.traces.WithLabelValues(r.service, seedFallback),
			lag:           m.lag.WithLabelValues(r.service),
			writeDuration: m.writeDuration.WithLabelValues(r.table),
		})
	}
	return m
}

// Written counts n records of kind r made durable by a write that took
// took: acknowledged by Kafka (ingest-api) or committed (writer).
func (m *SeedMetrics) Written(r SeedRecord, n int, took time.Duration) {
	m.series[r.kind].writeDuration.Observe(took.Seconds())
	m.series[r.kind].success.Add(float64(n))
}

// Failed counts n records of kind r that were refused or not written.
func (m *SeedMetrics) Failed(r SeedRecord, n int) {
	m.series[r.kind].failure.Add(float64(n))
}

// AcceptedWithoutDuplicateCheck counts a record of kind r accepted while
// the database that de-duplicates it was unreachable.
func (m *SeedMetrics) AcceptedWithoutDuplicateCheck(r SeedRecord) {
	m.series[r.kind].fallback.Inc()
}

// Lag returns the lag histogram of kind r.
func (m *SeedMetrics) Lag(r SeedRecord) prometheus.Observer { return m.series[r.kind].lag }

// ValidationFailure counts a field rejected for reason.
func (m *SeedMetrics) ValidationFailure(field, reason string) {
	m.validationFailures.WithLabelValues(field, reason).Inc()
}
