package writer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/auditstream/auditstream/internal/telemetry"
)

// Metrics are the writer's Prometheus series; build them once per registry.
type Metrics struct{ m *metrics }

type metrics struct {
	rows       *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	// unverifiedDuplicates counts the event duplicates of rows stored
	// without a content digest (before migration 000003).
	unverifiedDuplicates prometheus.Counter
	deadLetters          *prometheus.CounterVec
	batchSize            prometheus.Histogram
	flush                *prometheus.HistogramVec
	lag                  *prometheus.GaugeVec
	outage               prometheus.Gauge
	outagesTotal         prometheus.Counter
	// groupSession, committedOffset and highWatermark: group.go.
	groupSession    prometheus.Gauge
	committedOffset *prometheus.GaugeVec
	highWatermark   *prometheus.GaugeVec
	submitters      *prometheus.CounterVec
	chainHeads      prometheus.Histogram
	chainRaces      prometheus.Counter
	seed            *telemetry.SeedMetrics
}

// NewMetrics registers the writer's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{m: &metrics{
		rows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_writer_rows_written_total",
			Help: "Rows inserted into PostgreSQL, by table.",
		}, []string{"table"}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_writer_duplicates_total",
			Help: "Records skipped because their event_id / notification_id was already stored, by table.",
		}, []string{"table"}),
		unverifiedDuplicates: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_writer_unverified_duplicates_total",
			Help: "Of the audit_events duplicates, those whose stored row has no content digest to compare with (stored before migration 000003): skipped unchecked.",
		}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_writer_dead_letters_total",
			Help: "Records sent to the DLQ, by error class (poison, failed, conflict).",
		}, []string{"class"}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditstream_writer_batch_records",
			Help:    "Records per flushed batch.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000},
		}),
		flush: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditstream_writer_flush_duration_seconds",
			Help:    "Time to flush a batch: store, dead-letter, mark offsets; by result (ok, abandoned).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_writer_consumer_lag_records",
			Help: "Records behind the partition's high-water mark, as of the last record consumed.",
		}, []string{"topic", "partition"}),
		outage: f.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_writer_outage",
			Help: "1 while PostgreSQL is unreachable and the writer is paused, retrying; else 0.",
		}),
		groupSession: f.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_writer_group_session",
			Help: "1 while the writer is in a consumer group session (owning its share of the partitions), else 0.",
		}),
		committedOffset: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_writer_partition_committed_offset",
			Help: "The consumer group's committed offset (the partition's oldest when it has none), for every partition of the writer's topics, owned or not; polled by each writer.",
		}, []string{"topic", "partition"}),
		highWatermark: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_writer_partition_high_watermark",
			Help: "The offset the partition's next record will get, for every partition of the writer's topics; minus the committed offset, the records waiting.",
		}, []string{"topic", "partition"}),
		outagesTotal: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_writer_outages_total",
			Help: "Database outages the writer has entered.",
		}),
		submitters: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_writer_submitters_total",
			Help: "Valid records by how their submitted_by was decided: verified (the API's signature checks out), unverified (kafka:<claimed name>), unknown (kafka:unknown).",
		}, []string{"result"}),
		chainHeads: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditstream_writer_chain_heads_per_batch",
			Help:    "Hash chain heads a stored batch moved (its distinct correlation ids); not observed with INTEGRITY_DISABLED.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000},
		}),
		chainRaces: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_writer_chain_races_total",
			Help: "Batches written again because another writer moved one of their chain heads first (both held the partition during a rebalance).",
		}),
		seed: telemetry.NewSeedMetrics(reg),
	}}
}
