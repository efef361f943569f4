package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/auditstream/auditstream/internal/eventgen"
)

// restartStage measures how soon a writer SIGKILLed and started again
// stores records: as a static member (the default, WRITER_INSTANCE_ID) and,
// as the baseline, as a dynamic one (GROUP_STATIC_MEMBERSHIP=false), each
// on a topic and in a consumer group of its own.
func restartStage(ctx context.Context, st *stack, logf func(string, ...any)) ([]Result, error) {
	static, err := restartOnce(ctx, st, "restart-static", logf, "WRITER_INSTANCE_ID=auditbench-restart")
	if err != nil {
		return nil, err
	}
	dynamic, err := restartOnce(ctx, st, "restart-dynamic", logf, "GROUP_STATIC_MEMBERSHIP=false")
	if err != nil {
		return nil, err
	}
	return []Result{
		{Name: "writer.restart.static_s", Value: static.Seconds(), Unit: "s", Target: Below(2),
			Notes: "writer SIGKILLed with records waiting, started again under the same WRITER_INSTANCE_ID (the default static membership): its process start -> its first rows stored (rows_written_total > 0, polled every 10 ms)"},
		{Name: "writer.restart.dynamic_s", Value: dynamic.Seconds(), Unit: "s",
			Notes: "BASELINE: the same with GROUP_STATIC_MEMBERSHIP=false: the new member waits for the dead one's session (GROUP_SESSION_TIMEOUT, 15 s) to expire and the group to rebalance"},
	}, nil
}

// restartOnce runs a writer (env added to the stack's) on a topic of its
// own until it has stored a first lot of records, SIGKILLs it, publishes a
// second lot, starts it again and returns how long the new process took
// to store its first rows.
func restartOnce(ctx context.Context, st *stack, name string, logf func(string, ...any), env ...string) (time.Duration, error) {
	const lot = 1000
	topic := st.topics.events + "." + name
	if err := st.kafka.CreateTopics(ctx, map[string]int32{topic: benchPartitions}); err != nil {
		return 0, err
	}
	dbURL, drop, err := st.freshDB(ctx, name)
	if err != nil {
		return 0, err
	}
	defer drop()
	env = append(append(st.integrity.Env(), "EVENTS_TOPIC="+topic), env...)
	group := "auditbench-" + name + "-" + randomID()
	c := &http.Client{Timeout: 2 * time.Second}
	// rows waits until the writer's rows_written_total reaches n, polling
	// every 10 ms, and returns when it did.
	rows := func(p *proc, metricsURL string, n float64) (time.Time, error) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if err := p.done(); err != nil {
				return time.Time{}, err
			}
			if v, err := metricValue(c, metricsURL, writerRowsMetric); err == nil && v >= n {
				return time.Now(), nil
			}
			if time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("%s: fewer than %.0f rows stored after 2 minutes", name, n)
			}
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	first, metricsURL, err := st.startWriter(ctx, dbURL, group, logf, env...)
	if err != nil {
		return 0, err
	}
	defer first.stop()
	if _, err := prefill(ctx, st, topic, eventgen.Events(lot, eventgen.Options{Seed: 4, IDs: true})); err != nil {
		return 0, err
	}
	if _, err := rows(first, metricsURL, lot); err != nil {
		return 0, err
	}
	if err := first.kill(); err != nil {
		return 0, err
	}
	if _, err := prefill(ctx, st, topic, eventgen.Events(lot, eventgen.Options{Seed: 5, IDs: true})); err != nil {
		return 0, err
	}
	start := time.Now()
	second, metricsURL, err := st.startWriter(ctx, dbURL, group, logf, env...)
	if err != nil {
		return 0, err
	}
	defer second.stop()
	stored, err := rows(second, metricsURL, 1)
	if err != nil {
		return 0, err
	}
	took := stored.Sub(start)
	if _, err := rows(second, metricsURL, lot); err != nil {
		return 0, err
	}
	if err := second.stop(); err != nil {
		return 0, err
	}
	logf("writer: %s: restarted writer stored its first rows %s after its start", name, took.Round(time.Millisecond))
	return took, countRows(ctx, dbURL, "audit_events", 2*lot)
}
