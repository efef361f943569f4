package main

import (
	"context"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/internal/eventgen"
)

// backlogChunk is how many events are generated and published at a time,
// so that this process never holds the whole backlog.
const backlogChunk = 50_000

// backlogStage pre-fills a topic of its own with rows events, drains it
// with the writer binary (defaults, chain on) into a fresh database, and
// reports the writer's memory over the drain: the peak (VmHWM) and whether
// its RSS grows with what is left to drain.
func backlogStage(ctx context.Context, st *stack, rows int, logf func(string, ...any)) ([]Result, error) {
	topic := st.topics.events + ".backlog"
	if err := st.kafka.CreateTopics(ctx, map[string]int32{topic: benchPartitions}); err != nil {
		return nil, err
	}
	start := time.Now()
	for from, seed := 0, uint64(100); from < rows; from, seed = from+backlogChunk, seed+1 {
		events := eventgen.Events(min(backlogChunk, rows-from), eventgen.Options{Seed: seed, IDs: true})
		if _, err := prefill(ctx, st, topic, events); err != nil {
			return nil, err
		}
	}
	logf("writer: backlog of %s events in %s in %s", thousands(int64(rows)), topic, time.Since(start).Round(time.Millisecond))
	d, err := drainWithWriter(ctx, st, rows, "backlog", logf, nil, append(st.integrity.Env(), "EVENTS_TOPIC="+topic)...)
	if err != nil {
		return nil, err
	}
	peak, _ := d.proc.usage()
	results := []Result{
		{Name: "writer.backlog.rows_per_s", Value: d.steady, Unit: "rows/s",
			Notes: fmt.Sprintf("real writer binary (defaults, chain on) draining a %s-record backlog, first stored rows to the last", thousands(int64(rows)))},
		{Name: "writer.backlog.peak_rss", Value: float64(peak) / (1 << 20), Unit: "MiB", Target: Below(200),
			Notes: "VmHWM of the writer from /proc/<pid>/status, sampled every 20 ms, start to exit"},
	}
	samples := d.proc.rssSamples()
	if len(samples) >= 8 {
		second, last := rssQuarters(len(samples), func(i int) int64 { return samples[i].rss })
		results = append(results, Result{Name: "writer.backlog.rss_growth", Value: last / second, Unit: "x", Target: Below(1.10),
			Notes: fmt.Sprintf("mean VmRSS of the last quarter of the drain (%.1f MiB) / of the second (%.1f MiB), %d 1 s samples: memory does not grow with the backlog", last, second, len(samples))})
	}
	return results, nil
}

// rssQuarters returns the mean RSS (MiB) of the second and of the last
// quarter of n samples (rss(i) in bytes): the first quarter is warm-up,
// and memory that grows with what has been drained shows as last > second.
func rssQuarters(n int, rss func(i int) int64) (second, last float64) {
	q := n / 4
	mean := func(from, to int) float64 {
		var t float64
		for i := from; i < to; i++ {
			t += float64(rss(i))
		}
		return t / float64(to-from) / (1 << 20)
	}
	return mean(q, 2*q), mean(n-q, n)
}
