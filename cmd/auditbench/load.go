package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what a closed-loop load run measured.
type loadResult struct {
	requests int64
	errors   int64
	// completed counts every answered request, warm-up included: what
	// the server's CPU over the whole case is divided by.
	completed int64
	firstErr  string
	elapsed   time.Duration
	lat       latencies
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
// back to back (with authorization as the Authorization header, when set),
// for warmup (unmeasured) then duration, and returns the completed
// requests, errors and every measured latency (request sent to body read).
// Only 201 and 202 (spooled, SPEC 11) count as success.
func closedLoop(ctx context.Context, url, authorization string, conc int, warmup, duration time.Duration, body func(worker, i int) []byte) loadResult {
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
			var n, errs, done int64
			var firstErr string
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				b := body(w, i)
				start := time.Now()
				resp, err := post(client, url, authorization, b)
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				d := time.Since(start)
				if err == nil {
					done++
				}
				if !measuring.Load() || stop.Load() {
					continue
				}
				if status != http.StatusCreated && status != http.StatusAccepted {
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
			res.completed += done
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

func post(client *http.Client, url, authorization string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return client.Do(req)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
