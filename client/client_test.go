package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/client"
	"github.com/auditstream/auditstream/internal/testenv"
)

// fakeAPI stands in for ingest-api's write endpoints: it records every
// request and answers as the test's respond says (201 by default).
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests []fakeRequest
	respond  func(r *http.Request, n int) reply // n: 0 for the first request
}

type fakeRequest struct {
	at     time.Time
	path   string
	header http.Header
	events []json.RawMessage // a notification's body is its one element
}

// ids returns the event_id of every event of the request.
func (r fakeRequest) ids(t *testing.T) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, len(r.events))
	for i, ev := range r.events {
		var v struct {
			EventID uuid.UUID `json:"event_id"`
		}
		require.NoError(t, json.Unmarshal(ev, &v))
		ids[i] = v.EventID
	}
	return ids
}

type reply struct {
	status int
	header map[string]string
	body   string
}

var created = reply{status: http.StatusCreated}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	api := &fakeAPI{t: t, respond: func(*http.Request, int) reply { return created }}
	api.srv = httptest.NewServer(http.HandlerFunc(api.serve))
	t.Cleanup(api.srv.Close)
	return api
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var events []json.RawMessage
	switch {
	case r.Method != http.MethodPost:
		err = errors.New("unexpected method " + r.Method)
	case err != nil:
	case r.URL.Path == "/api/v1/audit/events/batch":
		err = json.Unmarshal(body, &events)
	case r.URL.Path == "/api/v1/audit/notifications" && json.Valid(body):
		events = []json.RawMessage{body}
	default:
		err = errors.New("unexpected request to " + r.URL.Path)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusTeapot)
		return
	}
	a.mu.Lock()
	n := len(a.requests)
	a.requests = append(a.requests, fakeRequest{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), events: events})
	respond := a.respond
	a.mu.Unlock()

	rep := respond(r, n)
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	if rep.body == "" && rep.status == http.StatusCreated {
		rep.body = `{"message":"accepted"}`
	}
	if rep.body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/problem+json")
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (a *fakeAPI) setRespond(f func(r *http.Request, n int) reply) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.respond = f
}

func (a *fakeAPI) got() []fakeRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// events returns every event received, in order, over all requests.
func (a *fakeAPI) events() []json.RawMessage {
	var all []json.RawMessage
	for _, r := range a.got() {
		all = append(all, r.events...)
	}
	return all
}

// sizes returns the number of events of each request.
func (a *fakeAPI) sizes() []int {
	var n []int
	for _, r := range a.got() {
		n = append(n, len(r.events))
	}
	return n
}

func (a *fakeAPI) awaitRequests(n int) {
	a.t.Helper()
	testenv.Await(a.t, 10*time.Second, fmt.Sprintf("%d requests", n), func() (bool, string) {
		got := a.sizes()
		return len(got) >= n, fmt.Sprintf("requests of sizes %v", got)
	})
}

// client returns a Client of the fake, logging to the test and retrying
// fast; it is closed when the test ends.
func (a *fakeAPI) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	base := []client.Option{
		client.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))),
		client.WithRetryWait(time.Millisecond, 20*time.Millisecond),
	}
	c, err := client.New(a.srv.URL, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// failures collects what the failure handler is told.
type failures struct {
	mu  sync.Mutex
	got []client.Failure
}

func (f *failures) handle(fl client.Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, fl)
}

func (f *failures) list() []client.Failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// recordingMetrics adds up what the client reports.
type recordingMetrics struct {
	sent, retried, failed, depth atomic.Int64
}

func (m *recordingMetrics) Sent(n int)             { m.sent.Add(int64(n)) }
func (m *recordingMetrics) Retried(n int, _ error) { m.retried.Add(int64(n)) }
func (m *recordingMetrics) Failed(n int)           { m.failed.Add(int64(n)) }
func (m *recordingMetrics) QueueDepth(n int)       { m.depth.Store(int64(n)) }

func sendN(t *testing.T, c *client.Client, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ev := validEvent()
		ev.EventID = uuid.New()
		ev.EventData = map[string]int{"seq": i}
		require.NoError(t, c.Send(t.Context(), ev))
		ids[i] = ev.EventID
	}
	return ids
}

func TestBatchesBySize(t *testing.T) {
	api := newFakeAPI(t)
	c := api.client(t, client.WithBatchSize(10), client.WithBatchAge(time.Hour))
	ids := sendN(t, c, 25)
	api.awaitRequests(2)
	require.Equal(t, []int{10, 10}, api.sizes(), "full batches leave without waiting for their age")
	require.Equal(t, 5, c.Pending())
	require.NoError(t, c.Flush(t.Context()))
	require.Equal(t, []int{10, 10, 5}, api.sizes())
	var got []uuid.UUID
	for _, r := range api.got() {
		got = append(got, r.ids(t)...)
	}
	require.Equal(t, ids, got, "in the order sent")
	require.Zero(t, c.Pending())
}

func TestBatchesByAge(t *testing.T) {
	api := newFakeAPI(t)
	const age = 100 * time.Millisecond
	c := api.client(t, client.WithBatchAge(age))
	start := time.Now()
	sendN(t, c, 3)
	api.awaitRequests(1)
	got := api.got()
	require.Len(t, got[0].events, 3)
	require.GreaterOrEqual(t, got[0].at.Sub(start), age, "a batch waits for its age to fill")
}

func TestBatchesByBytes(t *testing.T) {
	api := newFakeAPI(t)
	// Each test event is about 300 bytes: three fit in 1 KiB, four do not.
	c := api.client(t, client.WithMaxBatchBytes(1024), client.WithBatchAge(time.Hour))
	sendN(t, c, 7)
	require.NoError(t, c.Flush(t.Context()))
	require.Equal(t, []int{3, 3, 1}, api.sizes())
}

// TestRetryAfterHonoured checks that 429 and 503 are retried with the same
// event ids, no sooner than Retry-After, although the backoff alone would
// retry within milliseconds.
func TestRetryAfterHonoured(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			api := newFakeAPI(t)
			api.setRespond(func(_ *http.Request, n int) reply {
				if n == 0 {
					return reply{status: status, header: map[string]string{"Retry-After": "1"},
						body: fmt.Sprintf(`{"type":"x","title":"busy","status":%d}`, status)}
				}
				return created
			})
			m := &recordingMetrics{}
			c := api.client(t, client.WithMetrics(m))
			sendN(t, c, 4)
			require.NoError(t, c.Flush(t.Context()))
			got := api.got()
			require.Len(t, got, 2)
			require.GreaterOrEqual(t, got[1].at.Sub(got[0].at), time.Second)
			require.Less(t, got[1].at.Sub(got[0].at), 1500*time.Millisecond, "at most a fifth of jitter")
			require.Equal(t, got[0].ids(t), got[1].ids(t), "a retry carries the same event ids")
			require.Equal(t, int64(4), m.retried.Load())
			require.Equal(t, int64(4), m.sent.Load())
			require.Equal(t, int64(4), m.depth.Load(), "sampled before the retry, while the 4 were pending")
			require.Zero(t, m.failed.Load())
		})
	}
}

// TestRetriedUntilAccepted checks the answers that are retried without a
// Retry-After: other 5xx, a 503 without the header, and a connection the
// server drops; 202 ends the retries like 201.
func TestRetriedUntilAccepted(t *testing.T) {
	tests := []struct {
		name  string
		first func(w http.ResponseWriter) bool // false: answer with the reply
		reply reply
		final reply
	}{
		{name: "500", reply: reply{status: 500, body: `{"status":500,"title":"Internal server error"}`}, final: created},
		{name: "502 from a proxy", reply: reply{status: 502, header: map[string]string{"Content-Type": "text/html"}, body: "<h1>Bad gateway</h1>"}, final: created},
		{name: "503 without Retry-After", reply: reply{status: 503}, final: created},
		{name: "202 is accepted", reply: reply{status: 500}, final: reply{status: http.StatusAccepted, body: `{"message":"spooled"}`}},
		{name: "connection dropped", first: func(w http.ResponseWriter) bool {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		}, final: created},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			var hijacked atomic.Bool
			if tt.first != nil {
				api.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !hijacked.Swap(true) && tt.first(w) {
						return
					}
					api.serve(w, r)
				})
			}
			api.setRespond(func(_ *http.Request, n int) reply {
				if n < 2 && tt.first == nil {
					return tt.reply
				}
				return tt.final
			})
			m := &recordingMetrics{}
			var fails failures
			c := api.client(t, client.WithMetrics(m), client.WithFailureHandler(fails.handle))
			ids := sendN(t, c, 3)
			require.NoError(t, c.Flush(t.Context()))
			got := api.got()
			require.Equal(t, ids, got[len(got)-1].ids(t))
			if tt.first == nil {
				require.Len(t, got, 3, "two refusals, then accepted")
				require.Equal(t, int64(6), m.retried.Load())
			} else {
				require.Len(t, got, 1, "the dropped request never reached the handler")
				require.Equal(t, int64(3), m.retried.Load())
			}
			require.Equal(t, int64(3), m.sent.Load())
			require.Empty(t, fails.list())
			require.Zero(t, c.Pending())
		})
	}
}

// TestRefusedEventsReported checks that a batch refused for some events
// reports exactly those, with their own field errors, and delivers the rest
// at once; and that other 4xx answers fail the whole batch without a retry.
func TestRefusedEventsReported(t *testing.T) {
	validation := reply{status: http.StatusBadRequest, body: `{"type":"https://auditstream.dev/problems/validation-error",
		"title":"Validation failed","status":400,"detail":"2 field(s) failed validation; see field_errors.",
		"instance":"/api/v1/audit/events/batch","request_id":"req-1",
		"field_errors":{"[1].event_category":"must be one of: gateway","[3].event_data":"must be at most 16 bytes when serialized"}}`}
	unauthenticated := reply{status: http.StatusUnauthorized, header: map[string]string{"X-Request-ID": "req-2"},
		body: `{"type":"https://auditstream.dev/problems/unauthenticated","title":"Unauthenticated","status":401,"detail":"no token"}`}

	t.Run("400 naming events", func(t *testing.T) {
		api := newFakeAPI(t)
		api.setRespond(func(_ *http.Request, n int) reply {
			if n == 0 {
				return validation
			}
			return created
		})
		var fails failures
		m := &recordingMetrics{}
		c := api.client(t, client.WithFailureHandler(fails.handle), client.WithMetrics(m))
		ids := sendN(t, c, 5)
		require.NoError(t, c.Flush(t.Context()))

		got := api.got()
		require.Len(t, got, 2)
		require.Equal(t, []uuid.UUID{ids[0], ids[2], ids[4]}, got[1].ids(t), "the valid events, at once")
		fl := fails.list()
		require.Len(t, fl, 2)
		require.Equal(t, ids[1], fl[0].EventID)
		require.Equal(t, ids[3], fl[1].EventID)
		var p *client.Problem
		require.ErrorAs(t, fl[0].Err, &p)
		require.Equal(t, http.StatusBadRequest, p.Status)
		require.Equal(t, "https://auditstream.dev/problems/validation-error", p.Type)
		require.Equal(t, "req-1", p.RequestID)
		require.Equal(t, map[string]string{"event_category": "must be one of: gateway"}, p.FieldErrors)
		require.ErrorAs(t, fl[1].Err, &p)
		require.Equal(t, map[string]string{"event_data": "must be at most 16 bytes when serialized"}, p.FieldErrors)
		var sent client.Event
		require.NoError(t, json.Unmarshal(fl[0].Event, &sent), "the failure carries the event as sent")
		require.Equal(t, ids[1], sent.EventID)
		require.Equal(t, int64(2), m.failed.Load())
		require.Equal(t, int64(3), m.sent.Load())
		require.Zero(t, m.retried.Load(), "a refusal is not a retry")
	})

	t.Run("401 fails the batch", func(t *testing.T) {
		api := newFakeAPI(t)
		api.setRespond(func(*http.Request, int) reply { return unauthenticated })
		var fails failures
		c := api.client(t, client.WithFailureHandler(fails.handle))
		ids := sendN(t, c, 3)
		require.NoError(t, c.Flush(t.Context()))
		require.Len(t, api.got(), 1, "not retried")
		fl := fails.list()
		require.Len(t, fl, 3)
		for i, f := range fl {
			require.Equal(t, ids[i], f.EventID)
			var p *client.Problem
			require.ErrorAs(t, f.Err, &p)
			require.Equal(t, http.StatusUnauthorized, p.Status)
			require.Equal(t, "auditstream: 401 Unauthenticated: no token (request req-2)", p.Error())
		}
	})
}

// TestRefusedBatchSplit checks that a batch refused as a whole (413, or a
// 400 naming no event) is split until the parts pass or the culprit stands
// alone, and that a failure without a handler is logged, not lost.
func TestRefusedBatchSplit(t *testing.T) {
	api := newFakeAPI(t)
	poison := uuid.New()
	api.setRespond(func(_ *http.Request, n int) reply {
		ids := api.got()[n].ids(t)
		switch {
		case len(ids) > 2:
			return reply{status: http.StatusRequestEntityTooLarge, body: `{"status":413,"title":"Payload too large"}`}
		case slices.Contains(ids, poison):
			return reply{status: http.StatusBadRequest, body: `{"status":400,"title":"Malformed request","detail":"no"}`}
		}
		return created
	})
	var logged safeBuffer
	c, err := client.New(api.srv.URL, client.WithLogger(slog.New(slog.NewJSONHandler(&logged, nil))))
	require.NoError(t, err)
	ids := sendN(t, c, 4)
	ev := validEvent()
	ev.EventID = poison
	require.NoError(t, c.Send(t.Context(), ev))
	require.NoError(t, c.Close(t.Context()))

	var delivered []uuid.UUID
	for _, r := range api.got() {
		if len(r.events) <= 2 && !slices.Contains(r.ids(t), poison) {
			delivered = append(delivered, r.ids(t)...)
		}
	}
	require.ElementsMatch(t, ids, delivered)
	require.Contains(t, logged.String(), `"msg":"auditstream: event not delivered","event_id":"`+poison.String()+`","error":"auditstream: 400 Malformed request: no"`)
}

type safeBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// gate holds the fake's answers until opened; a request whose client gives
// up is released too, so the server can always shut down.
type gate struct {
	open    chan struct{}
	arrived chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{}), arrived: make(chan struct{}, 100)} }

func (g *gate) respond(r *http.Request, _ int) reply {
	g.arrived <- struct{}{}
	select {
	case <-g.open:
		return created
	case <-r.Context().Done():
		return reply{status: http.StatusServiceUnavailable}
	}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// blockedClient returns a client whose first batch (of one event) is held
// by the server, with its buffer of two then filled.
func blockedClient(t *testing.T, opts ...client.Option) (*fakeAPI, *client.Client, *gate) {
	t.Helper()
	api := newFakeAPI(t)
	g := newGate()
	t.Cleanup(g.release)
	api.setRespond(g.respond)
	c := api.client(t, append([]client.Option{client.WithBatchSize(1), client.WithBufferSize(2)}, opts...)...)
	sendN(t, c, 1)
	<-g.arrived // the sending goroutine is busy with it
	sendN(t, c, 2)
	return api, c, g
}

func TestBufferFullError(t *testing.T) {
	api, c, g := blockedClient(t, client.WithNonBlockingSend())
	require.ErrorIs(t, c.Send(t.Context(), validEvent()), client.ErrBufferFull)
	require.Equal(t, 3, c.Pending(), "the refused event is not counted")
	g.release()
	require.NoError(t, c.Flush(t.Context()))
	require.Len(t, api.events(), 3)
	require.NoError(t, c.Send(t.Context(), validEvent()), "room again")
}

// TestSendBlocksWhenFull checks that a full buffer holds Send back until
// there is room, or until its context ends.
func TestSendBlocksWhenFull(t *testing.T) {
	api, c, g := blockedClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Send(ctx, validEvent()), context.DeadlineExceeded)
	require.Equal(t, 3, c.Pending())

	sent := make(chan error, 1)
	go func() { sent <- c.Send(t.Context(), validEvent()) }()
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v with the buffer full", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release()
	require.NoError(t, <-sent)
	require.NoError(t, c.Flush(t.Context()))
	require.Len(t, api.events(), 4)
}

func TestCloseFlushes(t *testing.T) {
	api := newFakeAPI(t)
	c := api.client(t, client.WithBatchSize(3), client.WithBatchAge(time.Hour))
	ids := sendN(t, c, 7)
	require.NoError(t, c.Close(t.Context()))
	require.Equal(t, []int{3, 3, 1}, api.sizes())
	var got []uuid.UUID
	for _, r := range api.got() {
		got = append(got, r.ids(t)...)
	}
	require.Equal(t, ids, got)
	require.ErrorIs(t, c.Send(t.Context(), validEvent()), client.ErrClosed)
	require.ErrorIs(t, c.Flush(t.Context()), client.ErrClosed)
	require.ErrorIs(t, c.Close(t.Context()), client.ErrClosed)
}

// TestCloseDeadline checks the policy when the server never accepts: Flush
// gives up waiting and keeps the events, Close gives up on them and reports
// each one, and a Send blocked on the full buffer returns ErrClosed.
func TestCloseDeadline(t *testing.T) {
	api := newFakeAPI(t)
	api.setRespond(func(*http.Request, int) reply {
		return reply{status: 503, header: map[string]string{"Retry-After": "1"}}
	})
	var fails failures
	m := &recordingMetrics{}
	c := api.client(t, client.WithFailureHandler(fails.handle), client.WithMetrics(m),
		client.WithBatchSize(2), client.WithBufferSize(3))
	ids := sendN(t, c, 5) // two in flight, three buffered

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := c.Flush(ctx)
	var unsent *client.UnsentError
	require.ErrorAs(t, err, &unsent)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 5, unsent.Count)
	require.Equal(t, 5, c.Pending(), "Flush's deadline gives up nothing")

	blocked := make(chan error, 1)
	go func() { blocked <- c.Send(context.Background(), validEvent()) }()

	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err = c.Close(ctx)
	require.ErrorAs(t, err, &unsent)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, "auditstream: 5 events not delivered: context deadline exceeded", err.Error())
	require.ErrorIs(t, <-blocked, client.ErrClosed)

	fl := fails.list()
	require.Len(t, fl, 5)
	for i, f := range fl {
		require.Equal(t, ids[i], f.EventID)
		require.ErrorIs(t, f.Err, client.ErrUndelivered)
		require.ErrorIs(t, f.Err, context.DeadlineExceeded)
	}
	require.Equal(t, int64(5), m.failed.Load())
	require.Zero(t, c.Pending())
	require.NotEmpty(t, api.got())
}

// TestFlushWaitsForEarlierEvents checks that Flush returns once the events
// sent before it are delivered, whichever batch they were in.
func TestFlushWaitsForEarlierEvents(t *testing.T) {
	api := newFakeAPI(t)
	c := api.client(t, client.WithBatchSize(2), client.WithBatchAge(time.Hour))
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				errs <- c.Send(t.Context(), validEvent())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, c.Flush(t.Context()))
	require.Len(t, api.events(), 100)
	require.Zero(t, c.Pending())
}

func TestAuthorization(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		api := newFakeAPI(t)
		c := api.client(t, client.WithToken("s3cret"))
		sendN(t, c, 1)
		require.NoError(t, c.Flush(t.Context()))
		h := api.got()[0].header
		require.Equal(t, "Bearer s3cret", h.Get("Authorization"))
		require.Equal(t, "application/json", h.Get("Content-Type"))
	})
	t.Run("token source, asked before every attempt", func(t *testing.T) {
		api := newFakeAPI(t)
		api.setRespond(func(_ *http.Request, n int) reply {
			if n == 0 {
				return reply{status: 503}
			}
			return created
		})
		var calls atomic.Int32
		source := func(ctx context.Context) (string, error) {
			n := calls.Add(1)
			if n == 1 {
				return "", errors.New("identity provider down")
			}
			return fmt.Sprintf("token-%d", n), nil
		}
		c := api.client(t, client.WithTokenSource(source))
		sendN(t, c, 1)
		require.NoError(t, c.Flush(t.Context()))
		got := api.got()
		require.Len(t, got, 2, "a token error is retried without a request")
		require.Equal(t, "Bearer token-2", got[0].header.Get("Authorization"))
		require.Equal(t, "Bearer token-3", got[1].header.Get("Authorization"))
	})
}

func TestTLS(t *testing.T) {
	api := &fakeAPI{t: t, respond: func(*http.Request, int) reply { return created }}
	api.srv = httptest.NewUnstartedServer(http.HandlerFunc(api.serve))
	api.srv.StartTLS()
	t.Cleanup(api.srv.Close)
	// The handshakes the untrusting client aborts are no news.
	api.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	roots := x509.NewCertPool()
	roots.AddCert(api.srv.Certificate())

	c := api.client(t, client.WithTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))
	sendN(t, c, 1)
	require.NoError(t, c.Flush(t.Context()))

	var fails failures
	untrusting := api.client(t, client.WithFailureHandler(fails.handle))
	sendN(t, untrusting, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	require.Error(t, untrusting.Close(ctx), "an unknown CA is retried, not trusted")
	require.Len(t, api.got(), 1)
	require.Len(t, fails.list(), 1)
}

func TestNewRefusesBadSettings(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts []client.Option
		want string
	}{
		{"no scheme", "localhost:8080", nil, `want http:// or https:// and a host`},
		{"no host", "http://", nil, `want http:// or https:// and a host`},
		{"batch too large", "http://x", []client.Option{client.WithBatchSize(5001)}, "batch size must be 1–5000, got 5001"},
		{"several at once", "http://x", []client.Option{client.WithBufferSize(0), client.WithBatchAge(0), client.WithRetryWait(time.Second, time.Millisecond)},
			"batch age must be positive, got 0s\nbuffer size must be at least 1, got 0\nretry waits must be 0 < initial <= max, got 1s and 1ms"},
		{"TLS and own client", "https://x", []client.Option{client.WithHTTPClient(http.DefaultClient), client.WithTLSConfig(&tls.Config{})},
			"WithTLSConfig and WithHTTPClient exclude each other"},
		{"valid", "https://x/prefix", []client.Option{client.WithBatchSize(5000), client.WithBufferSize(1)}, ""},
		{"no categories", "http://x", []client.Option{client.WithCategories()}, "event categories must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.New(tt.url, tt.opts...)
			if tt.want == "" {
				require.NoError(t, err)
				require.NoError(t, c.Close(t.Context()))
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.Nil(t, c)
		})
	}
}

// TestBasePath checks that a path prefix of the base URL (an API behind a
// gateway) is kept.
func TestBasePath(t *testing.T) {
	api := newFakeAPI(t)
	inner := api.srv.Config.Handler
	api.srv.Config.Handler = http.StripPrefix("/auditstream", inner)
	c, err := client.New(api.srv.URL + "/auditstream/")
	require.NoError(t, err)
	sendN(t, c, 1)
	require.NoError(t, c.Close(t.Context()))
	require.Len(t, api.got(), 1)
}

type countingTransport struct {
	n atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestOwnHTTPClient(t *testing.T) {
	api := newFakeAPI(t)
	rt := &countingTransport{}
	c := api.client(t, client.WithHTTPClient(&http.Client{Transport: rt}))
	sendN(t, c, 3)
	require.NoError(t, c.Flush(t.Context()))
	require.Equal(t, int32(1), rt.n.Load())
	require.Len(t, api.events(), 3)
}

func TestSendWithEndedContext(t *testing.T) {
	api := newFakeAPI(t)
	c := api.client(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, c.Send(ctx, validEvent()), context.Canceled)
	require.Zero(t, c.Pending())
}
