package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/eventgen"
)

const lagSynopsis = `
Pipeline lag (issue items 4 and 6): the real ingest-api and writer binaries
on one stack, with their defaults (access control on with an API key, the
hash chain and checkpoints on, submitted_by signed). The maximum rate is the api stage's single-event req/s (in
'all') or a quick closed-loop ramp (--ramp at 32 clients); then events are
sent open-loop at half of it (--rate overrides) for --duration, each with a
client event_id and event_timestamp.

  visible   accepted (the client has the 201) -> the row is returned by a
            query: a poller reads audit_events by primary key every 50 ms
            (so the figure carries up to 50 ms of polling granularity)
  ingested  ingested_at - accepted: ingested_at is now() of the writer's
            transaction (its start, before COPY and commit), so this is a
            lower bound of the visibility lag; same machine, same clock

Targets: visible p99 < 1 s; the writer's RSS flat over the run (mean of the
last quarter / mean of the second quarter < 1.10; the first quarter is
warm-up). RSS is sampled every second with rows_written_total.`

type lagConfig struct {
	Duration time.Duration `default:"60s" help:"Sustained load."`
	Ramp     time.Duration `default:"5s" help:"Closed-loop run finding the maximum rate (without --rate)."`
	Rate     float64       `help:"Events/s to send (default: half the measured maximum)."`
	maxRate  float64       // from the api stage, when known
}

type lagCmd struct {
	lagConfig `embed:""`
}

func (lagCmd) Help() string { return lagSynopsis }

func (c *lagCmd) Run(r *run) error {
	return r.record(lagStage(r.ctx, c.lagConfig, r.logf, r.env.Params))
}

func lagStage(ctx context.Context, cfg lagConfig, logf func(string, ...any), params map[string]string) ([]Result, error) {
	if cfg.Duration < 4*time.Second {
		return nil, fmt.Errorf("lag: need --duration >= 4s")
	}
	if _, err := binaries(logf); err != nil {
		return nil, err
	}
	st, err := startStack(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	params["stack"] = st.describe()
	dbURL, _, err := st.freshDB(ctx, "lag")
	if err != nil {
		return nil, err
	}
	wp, metricsURL, err := st.startWriter(ctx, dbURL, "auditbench-lag-"+randomID(), logf)
	if err != nil {
		return nil, err
	}
	defer wp.stop()
	ap, base, err := st.startIngestAPI(ctx, dbURL, nil, logf)
	if err != nil {
		return nil, err
	}
	defer ap.stop()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	templates := eventgen.Events(1000, eventgen.Options{Seed: 3})
	maxNote := "api.single.req_per_s of this run"
	maxRate := cfg.maxRate
	if cfg.Rate <= 0 && maxRate <= 0 {
		logf("lag: ramp: 32 clients for %s to find the maximum single-event rate ...", cfg.Ramp)
		bodies := make([][]byte, len(templates))
		for i := range templates {
			bodies[i] = templates[i].AppendJSON(nil)
		}
		r := closedLoop(ctx, base+"/api/v1/audit/events", st.authorization(), 32, time.Second, cfg.Ramp, func(w, i int) []byte { return bodies[(w*7919+i)%len(bodies)] })
		if r.requests == 0 {
			return nil, fmt.Errorf("lag ramp: no request succeeded (%s)", r.firstErr)
		}
		maxRate = r.rate()
		maxNote = fmt.Sprintf("closed-loop ramp, 32 clients, %s, writer running", cfg.Ramp)
	}
	rate := cfg.Rate
	if rate <= 0 {
		rate = maxRate / 2
	} else {
		maxNote = "--rate given"
	}
	params["lag_rate"] = strconv.FormatFloat(rate, 'f', 0, 64)
	params["lag_duration"] = cfg.Duration.String()
	// Let the writer drain what the ramp sent before measuring.
	time.Sleep(2 * time.Second)
	logf("lag: sending %.0f events/s (max %.0f: %s) for %s ...", rate, maxRate, maxNote, cfg.Duration)

	n := int(rate * cfg.Duration.Seconds())
	type ev struct {
		id       uuid.UUID
		ts       time.Time
		accepted time.Time
		seen     time.Time
		failed   bool
	}
	evs := make([]ev, n)
	var mu sync.Mutex // guards evs' ts/accepted/seen/failed and index
	index := make(map[uuid.UUID]int, n)
	for i := range evs {
		evs[i].id = audit.NewEventID()
		index[evs[i].id] = i
	}
	var dispatched atomic.Int64

	// Poller: ids visible to a query, by primary key range.
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan error, 1)
	var polls atomic.Int64
	go func() {
		lo := 0
		for {
			select {
			case <-pollCtx.Done():
				pollDone <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			mu.Lock()
			d := int(dispatched.Load())
			for lo < d && (!evs[lo].seen.IsZero() || evs[lo].failed) {
				lo++
			}
			var from time.Time
			if lo < d {
				from = evs[lo].ts
			}
			mu.Unlock()
			if from.IsZero() {
				continue
			}
			rows, err := conn.Query(pollCtx, "SELECT event_id FROM audit_events WHERE event_timestamp >= $1", from.Add(-200*time.Millisecond))
			if err != nil {
				if pollCtx.Err() != nil {
					pollDone <- nil
				} else {
					pollDone <- fmt.Errorf("lag poller: %w", err)
				}
				return
			}
			now := time.Now()
			var ids []uuid.UUID
			for rows.Next() {
				var id uuid.UUID
				if rows.Scan(&id) == nil {
					ids = append(ids, id)
				}
			}
			rows.Close()
			polls.Add(1)
			mu.Lock()
			for _, id := range ids {
				if i, ok := index[id]; ok && evs[i].seen.IsZero() {
					evs[i].seen = now
				}
			}
			mu.Unlock()
		}
	}()

	// Writer RSS and rows, every second.
	type sample struct {
		at   time.Time
		rss  int64
		rows float64
	}
	var samples []sample
	sampCtx, stopSamp := context.WithCancel(ctx)
	sampDone := make(chan struct{})
	go func() {
		defer close(sampDone)
		c := &http.Client{Timeout: time.Second}
		for {
			if s, ok := readStatus(wp.cmd.Process.Pid); ok {
				rows, _ := metricValue(c, metricsURL, writerRowsMetric)
				samples = append(samples, sample{at: time.Now(), rss: s.rss, rows: rows})
			}
			select {
			case <-sampCtx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()

	// Open-loop sender: event i is due at start + i/rate; 64 workers.
	client := newLoadClient(64)
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range jobs {
				t := templates[i%len(templates)]
				t.EventID = evs[i].id
				t.EventTimestamp = time.Now().UTC().Truncate(time.Microsecond)
				mu.Lock()
				evs[i].ts = t.EventTimestamp
				mu.Unlock()
				dispatched.Store(max(dispatched.Load(), int64(i+1)))
				buf = t.AppendJSON(buf[:0])
				resp, err := post(client, base+"/api/v1/audit/events", st.authorization(), buf)
				ok := false
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusCreated
				}
				now := time.Now()
				mu.Lock()
				if ok {
					evs[i].accepted = now
				} else {
					evs[i].failed = true
					if firstErr.Load() == nil {
						firstErr.Store(fmt.Sprintf("status/err: %v %v", func() int {
							if resp != nil {
								return resp.StatusCode
							}
							return 0
						}(), err))
					}
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			if ctx.Err() != nil {
				break
			}
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sendTook := time.Since(start)
	stopSamp()
	<-sampDone
	// Mark stragglers dispatched for the poller, then wait for visibility.
	dispatched.Store(int64(n))
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		unseen := 0
		for i := range evs {
			if !evs[i].failed && evs[i].seen.IsZero() {
				unseen++
			}
		}
		mu.Unlock()
		if unseen == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopPoll()
	if err := <-pollDone; err != nil {
		return nil, err
	}

	// ingested_at of every row.
	ingested := map[uuid.UUID]time.Time{}
	rows, err := conn.Query(ctx, "SELECT event_id, ingested_at FROM audit_events WHERE event_timestamp >= $1", start.Add(-time.Second))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id uuid.UUID
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, err
		}
		ingested[id] = at
	}
	rows.Close()

	var visible, ingest latencies
	accepted, failed, lost := 0, 0, 0
	for i := range evs {
		e := &evs[i]
		switch {
		case e.failed:
			failed++
			continue
		case e.accepted.IsZero():
			continue
		}
		accepted++
		if e.seen.IsZero() {
			lost++
		} else {
			visible = append(visible, e.seen.Sub(e.accepted))
		}
		if at, ok := ingested[e.id]; ok {
			ingest = append(ingest, at.Sub(e.accepted))
		}
	}
	if err := wp.stop(); err != nil {
		return nil, err
	}
	if err := ap.stop(); err != nil {
		return nil, err
	}
	if accepted == 0 || len(visible) == 0 {
		return nil, fmt.Errorf("lag: %d accepted, %d visible (first error %v)", accepted, len(visible), firstErr.Load())
	}
	achieved := float64(accepted) / sendTook.Seconds()
	logf("lag: %d accepted (%.0f/s), %d failed, %d never visible; visible p50 %.1f ms p99 %.1f ms; %d polls",
		accepted, achieved, failed, lost, ms(visible.quantile(0.5)), ms(visible.quantile(0.99)), polls.Load())

	results := []Result{
		{Name: "lag.max_rate", Value: maxRate, Unit: "events/s", Notes: "the maximum the load is half of: " + maxNote},
		{Name: "lag.rate", Value: achieved, Unit: "events/s",
			Notes: fmt.Sprintf("accepted single-event POSTs per second, open loop, target %.0f/s for %s (64 senders)", rate, cfg.Duration)},
		{Name: "lag.visible.p50", Value: ms(visible.quantile(0.5)), Unit: "ms",
			Notes: fmt.Sprintf("201 received -> row returned by a 50 ms primary-key poll of audit_events; n=%d", len(visible))},
		{Name: "lag.visible.p99", Value: ms(visible.quantile(0.99)), Unit: "ms", Target: Below(1000), Notes: "at half load; includes <= 50 ms poll granularity"},
		{Name: "lag.visible.max", Value: ms(visible.max()), Unit: "ms"},
		{Name: "lag.ingested.p50", Value: ms(ingest.quantile(0.5)), Unit: "ms",
			Notes: fmt.Sprintf("ingested_at (writer tx start, DB clock) - 201 received; lower bound of visible; n=%d", len(ingest))},
		{Name: "lag.ingested.p99", Value: ms(ingest.quantile(0.99)), Unit: "ms"},
	}
	if failed > 0 || lost > 0 {
		results = append(results, Result{Name: "lag.failed_or_lost", Value: float64(failed + lost), Unit: "events", Target: Below(1),
			Notes: fmt.Sprintf("%d non-201, %d accepted but not visible 30 s after the load (first error %v)", failed, lost, firstErr.Load())})
	}

	// Writer RSS over the sustained run.
	if len(samples) >= 4 {
		q := len(samples) / 4
		second, last := rssQuarters(len(samples), func(i int) int64 { return samples[i].rss })
		// Least squares of RSS (MiB) on rows (millions), after warm-up.
		var sx, sy, sxx, sxy float64
		w := samples[q:]
		for _, s := range w {
			x, y := s.rows/1e6, float64(s.rss)/(1<<20)
			sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
		}
		k := float64(len(w))
		slope := 0.0
		if den := k*sxx - sx*sx; den > 0 {
			slope = (k*sxy - sx*sy) / den
		}
		peakRSS := int64(0)
		for _, s := range samples {
			peakRSS = max(peakRSS, s.rss)
		}
		rowsDuring := samples[len(samples)-1].rows - samples[0].rows
		results = append(results,
			Result{Name: "lag.writer_rss.start", Value: float64(samples[0].rss) / (1 << 20), Unit: "MiB", Notes: "VmRSS at the start of the sustained load"},
			Result{Name: "lag.writer_rss.end", Value: float64(samples[len(samples)-1].rss) / (1 << 20), Unit: "MiB",
				Notes: fmt.Sprintf("VmRSS at its end, after %s more rows", thousands(int64(rowsDuring)))},
			Result{Name: "lag.writer_rss.peak_sampled", Value: float64(peakRSS) / (1 << 20), Unit: "MiB", Notes: fmt.Sprintf("largest of %d 1 s VmRSS samples", len(samples))},
			Result{Name: "lag.writer_rss.slope", Value: slope, Unit: "MiB/Mrows", Notes: "least squares of VmRSS on rows_written_total, after the first quarter"},
			Result{Name: "lag.writer_rss.growth", Value: last / second, Unit: "x", Target: Below(1.10),
				Notes: fmt.Sprintf("mean VmRSS of the last quarter (%.1f MiB) / of the second quarter (%.1f MiB)", last, second)},
		)
	}
	results = append(results, procResults("lag", ap, "ramp + sustained load")...)
	results = append(results, procResults("lag", wp, "ramp + sustained load")...)
	return results, nil
}
