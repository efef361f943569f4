package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// answer is the server's final word on one batch request; retryable
// answers never get here.
type answer struct {
	// accepted: 201 or 202, every event of the batch is in.
	accepted bool
	// rejected maps the index of each event the server refused, in a
	// batch refused only for them, to its own problem: the others are
	// valid and go again at once.
	rejected map[int]*Problem
	// split: the batch as a whole was refused (too large, or a 400 that
	// names no event); halves may pass, or isolate the culprit.
	split bool
	// problem is why every event of the batch is refused.
	problem *Problem
}

// deliver sends items, splitting them as the answers require, until every
// one is accepted or reported failed. It returns the events left when
// Close's deadline passed (nil otherwise).
func (c *Client) deliver(items []item) []item {
	work := [][]item{items}
	for len(work) > 0 {
		b := work[0]
		work = work[1:]
		ans, err := c.attempt(b)
		if err != nil {
			// A fresh slice: b and work may share a backing array.
			return slices.Concat(append([][]item{b}, work...)...)
		}
		switch {
		case ans.accepted:
			c.cfg.metrics.Sent(len(b))
			c.pending.Add(-int64(len(b)))
		case ans.rejected != nil:
			var bad, good []item
			var problems []*Problem
			for i, it := range b {
				if p, ok := ans.rejected[i]; ok {
					bad = append(bad, it)
					problems = append(problems, p)
				} else {
					good = append(good, it)
				}
			}
			c.fail(bad, func(i int) error { return problems[i] })
			if len(good) > 0 {
				work = append([][]item{good}, work...)
			}
		case ans.split && len(b) > 1:
			half := len(b) / 2
			work = append([][]item{b[:half], b[half:]}, work...)
		default:
			c.fail(b, func(int) error { return ans.problem })
		}
	}
	return nil
}

// attempt posts one batch until the server gives a final answer. Its error
// is the cause of Close's deadline: nothing else stops the retries.
func (c *Client) attempt(b []item) (answer, error) {
	body := make([]byte, 0, 2+len(b)*(len(b[0].data)+1))
	body = append(body, '[')
	for i, it := range b {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, it.data...)
	}
	body = append(body, ']')
	return retry(c, c.runCtx, fmt.Sprintf("batch of %d events", len(b)), len(b), func() (answer, error) {
		c.cfg.metrics.QueueDepth(c.Pending())
		return c.post(body, len(b))
	})
}

// retry runs op until it returns no error or a permanent one, or ctx ends,
// waiting between attempts with jittered exponential backoff, or as long as
// a Retry-After asked. what names the request in the log; events, if any,
// go to Metrics.Retried.
func retry[T any](c *Client, ctx context.Context, what string, events int, op func() (T, error)) (T, error) {
	policy := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.retryInitial,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         c.cfg.retryMax,
	}
	return backoff.Retry(ctx, op,
		backoff.WithBackOff(policy),
		// The deadline is the caller's context, not a budget of the loop.
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, wait time.Duration) {
			if events > 0 {
				c.cfg.metrics.Retried(events, err)
			}
			c.cfg.logger.Warn("auditstream: request not accepted, retrying",
				"request", what, "wait", wait.String(), "error", err.Error())
		}))
}

// post sends one batch request and interprets the server's final answer.
func (c *Client) post(body []byte, events int) (answer, error) {
	status, p, err := c.exchange(c.runCtx, c.batchURL, body)
	switch {
	case err != nil:
		return answer{}, err
	case p == nil:
		return answer{accepted: true}, nil
	case (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge) && events > 1:
		if rejected := perEvent(p, events); rejected != nil {
			return answer{rejected: rejected}, nil
		}
		return answer{split: true, problem: p}, nil
	}
	return answer{problem: p}, nil
}

// exchange posts body to url once. A retryable outcome (network error,
// timeout, 429, 5xx) is an error, joined with a *backoff.RetryAfterError
// when the server said how long to wait. Otherwise it returns the status
// and, for anything but 201 and 202, the server's problem: other 4xx, and
// statuses this API never sends, cannot change by sending the same request
// again.
func (c *Client) exchange(ctx context.Context, url string, body []byte) (int, *Problem, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		// The URL was checked by New: this cannot heal by retrying.
		return 0, &Problem{Title: "Request not built", Detail: err.Error()}, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "auditstream-go-client")
	if c.cfg.token != nil {
		token, err := c.cfg.token(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("bearer token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("post: %w", err)
	}
	defer res.Body.Close()

	switch code := res.StatusCode; {
	case code == http.StatusCreated || code == http.StatusAccepted:
		// Drained so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxProblemBytes))
		return code, nil, nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		p := readProblem(res)
		if wait, ok := retryAfter(res.Header.Get("Retry-After"), time.Now()); ok {
			return 0, nil, errors.Join(p, &backoff.RetryAfterError{Duration: jitterAbove(wait)})
		}
		return 0, nil, p
	case code >= 500:
		return 0, nil, readProblem(res)
	}
	return res.StatusCode, readProblem(res), nil
}

// perEvent splits a batch's validation problem into one problem per
// refused event, with the "[i]." prefix removed from its fields. It returns
// nil unless every field error names an event of the batch.
func perEvent(p *Problem, events int) map[int]*Problem {
	if len(p.FieldErrors) == 0 {
		return nil
	}
	fields := make(map[int]map[string]string)
	for key, msg := range p.FieldErrors {
		idx, field, ok := strings.Cut(strings.TrimPrefix(key, "["), "]")
		i, err := strconv.Atoi(idx)
		if !ok || !strings.HasPrefix(key, "[") || err != nil || i < 0 || i >= events {
			return nil
		}
		if fields[i] == nil {
			fields[i] = make(map[string]string)
		}
		fields[i][strings.TrimPrefix(field, ".")] = msg
	}
	out := make(map[int]*Problem, len(fields))
	for i, fe := range fields {
		q := *p
		q.FieldErrors = fe
		q.Detail = fmt.Sprintf("event [%d] of the batch failed validation; see field_errors", i)
		out[i] = &q
	}
	return out
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP-date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// jitterAbove adds up to a fifth to d: never earlier than the server
// asked, and clients that were refused together do not return together.
func jitterAbove(d time.Duration) time.Duration {
	return d + rand.N(d/5+1)
}
