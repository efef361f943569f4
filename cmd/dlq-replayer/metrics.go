package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/auditstream/auditstream/internal/dlq"
)

// daemonMetrics are what `dlq-replayer run` exports on METRICS_ADDR.
type daemonMetrics struct {
	records  *prometheus.CounterVec
	passes   *prometheus.CounterVec
	depth    *prometheus.GaugeVec
	oldest   *prometheus.GaugeVec
	lastPass prometheus.Gauge
}

func newDaemonMetrics(reg prometheus.Registerer) *daemonMetrics {
	f := promauto.With(reg)
	return &daemonMetrics{
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_replayer_records_total",
			Help: "DLQ records handled by the daemon, by action: replayed (back to the original topic), parked, kept.",
		}, []string{"action"}),
		passes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_replayer_passes_total",
			Help: "Replay passes, by result (ok, failed).",
		}, []string{"result"}),
		depth: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_replayer_waiting_records",
			Help: "Records waiting in the topic (DLQ or parked) for the replayer, after the last pass.",
		}, []string{"topic"}),
		oldest: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_replayer_oldest_waiting_age_seconds",
			Help: "Age of the oldest record waiting in the topic (0 when empty), after the last pass.",
		}, []string{"topic"}),
		lastPass: f.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_replayer_last_pass_timestamp_seconds",
			Help: "Unix time of the last successful pass.",
		}),
	}
}

func (m *daemonMetrics) observe(s dlq.Summary) {
	m.records.WithLabelValues("replayed").Add(float64(s.Replayed))
	m.records.WithLabelValues("parked").Add(float64(s.Parked))
	m.records.WithLabelValues("kept").Add(float64(s.Kept))
}
