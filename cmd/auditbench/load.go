package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
)

// genEvents returns n valid, realistic events (canonical JSON 450-650
// bytes): event_timestamp now, most optional fields set, a few hundred
// bytes of event_data. withIDs gives each a UUIDv7 event_id, as a client
// that names its events (or the API) would.
func genEvents(n int, seed uint64, withIDs bool) []audit.Event {
	r := rand.New(rand.NewPCG(seed, 0xbe7c4))
	types := eventTypes()
	namespaces := []string{"prod", "staging", "payments", "checkout", "kube-system", "monitoring", "search", "identity"}
	clusters := []string{"eu-west-1", "us-east-1", "ap-south-1"}
	severities := []string{"critical", "warning", "info"}
	resources := []string{"Signal", "RemediationRequest", "WorkflowExecution", "AIAnalysis", "Notification", "Pod", "Deployment"}
	alerts := []string{"HighCPU", "HighMemory", "PodCrashLooping", "DiskPressure", "KubeletDown", "ErrorRateHigh"}
	ptr := func(s string) *string { return &s }
	now := time.Now().UTC().Truncate(time.Microsecond)
	events := make([]audit.Event, n)
	for i := range events {
		t := types[r.IntN(len(types))]
		outcome := "success"
		switch x := r.IntN(100); {
		case x < 7:
			outcome = "failure"
		case x < 10:
			outcome = "pending"
		}
		fp := fmt.Sprintf("fp-%010x", r.Uint64()>>24)
		alert := alerts[r.IntN(len(alerts))]
		dur := r.Int64N(30_000)
		e := audit.Event{
			Version: "1.0", EventType: t.name, EventTimestamp: now, EventCategory: t.category, EventAction: t.action,
			EventOutcome:  outcome,
			CorrelationID: fmt.Sprintf("rr-bench-%07d", r.IntN(n/8+1)),
			ActorType:     ptr("service"), ActorID: ptr(t.category + "-controller"),
			ResourceType: ptr(resources[r.IntN(len(resources))]), ResourceID: ptr(fp),
			Namespace: ptr(namespaces[r.IntN(len(namespaces))]), ClusterName: ptr(clusters[r.IntN(len(clusters))]),
			Severity: ptr(severities[r.IntN(len(severities))]), DurationMS: &dur,
			EventData: fmt.Appendf(nil, `{"signal":{"fingerprint":%q,"labels":{"alertname":%q,"pod":"%s-%05x"},"value":%.2f},"source":"prometheus","message":"%s for %dm"}`,
				fp, alert, alert, r.IntN(1<<20), r.Float64()*100, alert, 1+r.IntN(30)),
		}
		if withIDs {
			e.EventID = uuid.Must(uuid.NewV7())
		}
		events[i] = e
	}
	return events
}

// loadResult is what a closed-loop load run measured.
type loadResult struct {
	requests int64
	errors   int64
	firstErr string
	elapsed  time.Duration
	lat      latencies
}

func (r loadResult) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// newLoadClient is a keep-alive HTTP client for conc concurrent senders.
func newLoadClient(conc int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conc * 2, MaxIdleConnsPerHost: conc * 2, MaxConnsPerHost: conc * 2,
		DisableCompression: true, IdleConnTimeout: time.Minute,
	}}
}

// closedLoop runs conc keep-alive clients, each POSTing body(i) to url
// back to back, for warmup (unmeasured) then duration, and returns the
// completed requests, errors and every measured latency (request sent to
// body read). Only 201 counts as success.
func closedLoop(ctx context.Context, url string, conc int, warmup, duration time.Duration, body func(worker, i int) []byte) loadResult {
	client := newLoadClient(conc)
	defer client.CloseIdleConnections()
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		mu        sync.Mutex
		res       loadResult
		wg        sync.WaitGroup
	)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat latencies
			var n, errs int64
			var firstErr string
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				b := body(w, i)
				start := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(b))
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				d := time.Since(start)
				if !measuring.Load() || stop.Load() {
					continue
				}
				if status != http.StatusCreated {
					errs++
					if firstErr == "" {
						firstErr = fmt.Sprintf("status %d err %v", status, err)
					}
					continue
				}
				n++
				lat = append(lat, d)
			}
			mu.Lock()
			res.requests += n
			res.errors += errs
			res.lat = append(res.lat, lat...)
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	sleepCtx(ctx, warmup)
	measuring.Store(true)
	start := time.Now()
	sleepCtx(ctx, duration)
	stop.Store(true)
	res.elapsed = time.Since(start)
	wg.Wait()
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
