package spool

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	spooled     prometheus.Counter
	drained     prometheus.Counter
	damaged     prometheus.Counter
	writeErrors prometheus.Counter
	fsyncs      prometheus.Counter
}

// newMetrics registers the spool's metrics; the gauges read s when
// scraped.
func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	f := promauto.With(reg)
	gauge := func(name, help string, v func(State) float64) {
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(s.State()) })
	}
	gauge("auditstream_spool_records", "Records in the local spool, waiting for Kafka.",
		func(st State) float64 { return float64(st.Records) })
	gauge("auditstream_spool_bytes", "Bytes of the local spool's segment files on disk.",
		func(st State) float64 { return float64(st.Bytes) })
	gauge("auditstream_spool_max_bytes", "SPOOL_MAX_BYTES: past it the API answers 503.",
		func(st State) float64 { return float64(st.MaxBytes) })
	gauge("auditstream_spool_oldest_age_seconds", "Age of the oldest record in the local spool; 0 when it is empty.",
		func(st State) float64 { return st.OldestAgeSeconds })
	gauge("auditstream_spool_usable", "1 while the local spool can take records, 0 when it cannot be written (see the logs).",
		func(st State) float64 {
			if st.State == "unavailable" {
				return 0
			}
			return 1
		})
	return &metrics{
		spooled: f.NewCounter(prometheus.CounterOpts{Name: "auditstream_spool_spooled_total",
			Help: "Records written to the local spool because Kafka could not take them (or others were waiting)."}),
		drained: f.NewCounter(prometheus.CounterOpts{Name: "auditstream_spool_drained_total",
			Help: "Spooled records published to Kafka and acknowledged."}),
		damaged: f.NewCounter(prometheus.CounterOpts{Name: "auditstream_spool_damaged_total",
			Help: "Damaged parts of spool segments skipped (a torn final write, a truncated or corrupted file); see the logs."}),
		fsyncs: f.NewCounter(prometheus.CounterOpts{Name: "auditstream_spool_fsyncs_total",
			Help: "Group commits of the local spool: one write and one fsync for every append waiting at that moment."}),
		writeErrors: f.NewCounter(prometheus.CounterOpts{Name: "auditstream_spool_write_errors_total",
			Help: "Appends the local spool could not write to disk (answered 503)."}),
	}
}
