package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

var (
	// ErrBufferFull is returned by Send with WithNonBlockingSend when the
	// buffer has no room: the event was not taken.
	ErrBufferFull = errors.New("auditstream: client buffer full")
	// ErrClosed is returned by Send, Flush and Notify after Close, and by
	// a second Close.
	ErrClosed = errors.New("auditstream: client closed")
	// ErrUndelivered is wrapped by the error of a Failure for an event
	// still unsent when Close's context ended.
	ErrUndelivered = errors.New("auditstream: not delivered before Close's deadline")
)

// Failure is an event this client will never deliver: the server refused
// it (Err is then a *Problem, e.g. a 400 naming its fields, or a 401), or
// Close's context ended before it was accepted (Err wraps ErrUndelivered
// and the context's cause). Event carries its event_id, so sending it again
// (after json.Unmarshal into an Event) can never store it twice.
type Failure struct {
	EventID uuid.UUID
	// Event is the event as it was sent: canonical AuditEventRequest JSON.
	Event json.RawMessage
	Err   error
}

// UnsentError is returned by Flush and Close when their context ended
// first. For Flush the Count events are still buffered and being retried;
// for Close they were reported to the failure handler.
type UnsentError struct {
	Count int
	Err   error // the context's cause
}

func (e *UnsentError) Error() string {
	return "auditstream: " + strconv.Itoa(e.Count) + " events not delivered: " + e.Err.Error()
}

func (e *UnsentError) Unwrap() error { return e.Err }

// Client sends audit events to an auditstream ingest-api in batches, from
// one background goroutine. It is safe for concurrent use. Close it to
// deliver what is buffered and stop the goroutine.
type Client struct {
	cfg              config
	enc              encoder
	http             *http.Client
	own              *http.Transport // the transport New built, nil with WithHTTPClient
	batchURL         string
	notificationsURL string

	queue   chan item
	pending atomic.Int64 // events taken by Send and not yet accepted or failed

	mu        sync.RWMutex // guards closed against senders registering
	closed    bool
	senders   sync.WaitGroup // Sends and Flushes that may still enqueue
	closing   chan struct{}  // closed by Close: blocked senders give up
	drain     chan struct{}  // closed by Close once nothing can be enqueued
	closeOnce sync.Once

	runCtx    context.Context // ends when Close's deadline passes
	abort     context.CancelCauseFunc
	aborted   atomic.Bool   // events were given up because of Close's deadline
	done      chan struct{} // closed when the sending goroutine has returned
	abandoned int           // events given up; read after done
}

// item is one buffered event, or a Flush waiting for everything ahead of it.
type item struct {
	id    uuid.UUID
	data  []byte        // canonical JSON
	flush chan struct{} // non-nil for a Flush marker
}

// New returns a Client for the ingest-api at baseURL (scheme, host and an
// optional path prefix, e.g. https://audit.example.com or
// http://gateway/auditstream) and starts its sending goroutine. It fails
// for an unusable URL or options.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("auditstream: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auditstream: base URL %q: want http:// or https:// and a host", baseURL)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("auditstream: %w", err)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	c := &Client{
		cfg:              cfg,
		enc:              encoder{rules: cfg.rules, now: time.Now},
		http:             cfg.httpClient,
		batchURL:         u.JoinPath("api/v1/audit/events/batch").String(),
		notificationsURL: u.JoinPath("api/v1/audit/notifications").String(),
		queue:            make(chan item, cfg.bufferSize),
		closing:          make(chan struct{}),
		drain:            make(chan struct{}),
		done:             make(chan struct{}),
	}
	if c.cfg.onFailure == nil {
		c.cfg.onFailure = c.logFailure
	}
	if c.http == nil {
		base, ok := http.DefaultTransport.(*http.Transport)
		if !ok {
			// The service wrapped the default transport (for tracing,
			// say): start from the standard library's settings instead.
			base = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
		}
		c.own = base.Clone()
		if cfg.tlsConfig != nil {
			c.own.TLSClientConfig = cfg.tlsConfig
		}
		c.http = &http.Client{Transport: c.own}
	}
	c.runCtx, c.abort = context.WithCancelCause(context.Background())
	go c.run()
	return c, nil
}

// Send validates ev with the server's rules, gives it a UUIDv7 event_id if
// it has none (and the current time if EventTimestamp is zero) and buffers
// it for the next batch. It returns before the event is delivered; delivery
// is retried until the server accepts it or refuses it for good (then the
// failure handler is told), or until Close's context ends.
//
// An invalid event is a *ValidationError and is not buffered. When the
// buffer is full Send waits for room until ctx ends (returning ctx.Err()),
// or returns ErrBufferFull at once with WithNonBlockingSend. After Close it
// returns ErrClosed.
func (c *Client) Send(ctx context.Context, ev Event) error {
	id, data, err := c.enc.encode(ev)
	if err != nil {
		return err
	}
	return c.enqueue(ctx, item{id: id, data: data})
}

// Pending returns the number of events taken by Send that are neither
// accepted by the server nor reported as failed yet.
func (c *Client) Pending() int { return int(c.pending.Load()) }

// Flush sends what is buffered now without waiting for batches to fill,
// and waits until every event sent before the call is accepted or reported
// failed. If ctx ends first it returns an *UnsentError with the number of
// events still pending (they stay buffered and are retried).
func (c *Client) Flush(ctx context.Context) error {
	marker := make(chan struct{})
	if err := c.enqueue(ctx, item{flush: marker}); err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return &UnsentError{Count: c.Pending(), Err: err}
	}
	select {
	case <-marker:
		if c.aborted.Load() {
			return ErrClosed
		}
		return nil
	case <-ctx.Done():
		return &UnsentError{Count: c.Pending(), Err: context.Cause(ctx)}
	}
}

// Close stops taking events, delivers everything buffered and stops the
// sending goroutine. Retryable failures are retried until ctx ends; then
// the events still unsent are reported to the failure handler (their Err
// wraps ErrUndelivered) and Close returns an *UnsentError with their
// number. Close never returns before the goroutine has stopped; a second
// Close returns ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	err := ErrClosed
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.closing)
		c.senders.Wait()
		close(c.drain)
		select {
		case <-c.done:
		case <-ctx.Done():
			c.abort(context.Cause(ctx))
			<-c.done
		}
		c.abort(nil)
		if c.own != nil {
			c.own.CloseIdleConnections()
		}
		err = nil
		if c.abandoned > 0 {
			err = &UnsentError{Count: c.abandoned, Err: context.Cause(ctx)}
		}
	})
	return err
}

// enqueue puts it in the buffer. pending counts an event before it is in
// the buffer, so that the sending goroutine never settles an event not yet
// counted.
func (c *Client) enqueue(ctx context.Context, it item) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	c.senders.Add(1)
	c.mu.RUnlock()
	defer c.senders.Done()

	events := int64(0)
	if it.flush == nil {
		events = 1
	}
	c.pending.Add(events)
	select {
	case c.queue <- it:
		return nil
	default:
	}
	if c.cfg.nonBlocking && events > 0 {
		c.pending.Add(-events)
		return ErrBufferFull
	}
	select {
	case c.queue <- it:
		return nil
	case <-ctx.Done():
		c.pending.Add(-events)
		return ctx.Err()
	case <-c.closing:
		c.pending.Add(-events)
		return ErrClosed
	}
}

// batch is the events of the next request.
type batch struct {
	items []item
	bytes int // of the request body
}

func (b *batch) add(it item) {
	b.items = append(b.items, it)
	b.bytes += len(it.data) + 1 // with its comma, or the opening bracket
}

// sizeWith is the size of the request body with it added, closing bracket
// included.
func (b *batch) sizeWith(it item) int { return b.bytes + len(it.data) + 2 }

// run is the sending goroutine: it fills batches from the buffer and sends
// each when it is full, old enough, or ahead of a Flush, one request at a
// time so that events leave in the order they were sent.
func (c *Client) run() {
	defer close(c.done)
	b := batch{items: make([]item, 0, c.cfg.batchSize)}
	age := time.NewTimer(c.cfg.batchAge)
	age.Stop()
	var ageC <-chan time.Time
	// send delivers the batch; false means Close's deadline passed and
	// everything left was given up.
	send := func() bool {
		age.Stop()
		ageC = nil
		if len(b.items) == 0 {
			return true
		}
		left := c.deliver(b.items)
		b = batch{items: make([]item, 0, c.cfg.batchSize)}
		if left != nil {
			c.giveUp(left)
			return false
		}
		return true
	}
	take := func(it item) bool {
		if it.flush != nil {
			ok := send()
			close(it.flush)
			return ok
		}
		if len(b.items) > 0 && b.sizeWith(it) > c.cfg.maxBatchBytes && !send() {
			return false
		}
		b.add(it)
		if len(b.items) == 1 {
			age.Reset(c.cfg.batchAge)
			ageC = age.C
		}
		return len(b.items) < c.cfg.batchSize || send()
	}
	for {
		select {
		case it := <-c.queue:
			if !take(it) {
				return
			}
		case <-ageC:
			if !send() {
				return
			}
		case <-c.drain:
			// Close has stopped every sender: what is in the buffer
			// now is all there will be.
			for {
				select {
				case it := <-c.queue:
					if !take(it) {
						return
					}
				default:
					send()
					return
				}
			}
		}
	}
}

// giveUp reports left and everything still buffered as failed: Close's
// deadline has passed, and no sender can enqueue any more.
func (c *Client) giveUp(left []item) {
	c.aborted.Store(true)
	err := fmt.Errorf("%w: %w", ErrUndelivered, context.Cause(c.runCtx))
	for drained := false; !drained; {
		select {
		case it := <-c.queue:
			if it.flush != nil {
				close(it.flush)
			} else {
				left = append(left, it)
			}
		default:
			drained = true
		}
	}
	c.abandoned = len(left)
	c.fail(left, func(int) error { return err })
}

// fail reports items to the failure handler, with errFor(i) as the error
// of items[i].
func (c *Client) fail(items []item, errFor func(i int) error) {
	for i, it := range items {
		c.cfg.onFailure(Failure{EventID: it.id, Event: it.data, Err: errFor(i)})
	}
	c.cfg.metrics.Failed(len(items))
	c.pending.Add(-int64(len(items)))
}

func (c *Client) logFailure(f Failure) {
	c.cfg.logger.Error("auditstream: event not delivered", "event_id", f.EventID.String(), "error", f.Err.Error())
}
