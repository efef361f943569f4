package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/auditstream/auditstream/internal/audit"
)

// Defaults of the options.
const (
	// DefaultBatchSize events go in one batch request: large enough that
	// requests are few (100,000 events are 200 requests), small enough
	// that a request stays far below the server's 5,000 and 16 MiB limits.
	DefaultBatchSize = 500
	// DefaultBatchAge is the longest an event waits for its batch to fill:
	// audit trails are read by people, for whom a second is immediate.
	DefaultBatchAge = time.Second
	// DefaultMaxBatchBytes is half the server's default batch body limit
	// (MAX_BATCH_BODY_BYTES, 16 MiB): batches of large events leave early
	// rather than be refused for their size.
	DefaultMaxBatchBytes = 8 << 20
	// DefaultBufferSize events wait while the server is unreachable: 20
	// full batches, a few MiB of typical events.
	DefaultBufferSize = 10_000
	// DefaultRequestTimeout bounds one request. The server waits up to
	// PUBLISH_TIMEOUT (10 s by default) for Kafka before answering 503;
	// a request cut short earlier would be retried without learning why.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultRetryInitial and DefaultRetryMax bound the jittered
	// exponential wait between attempts (each wait is randomised by ±50%):
	// a restarted API is found again within a fraction of a second, and a
	// long outage costs one request per half minute.
	DefaultRetryInitial = 200 * time.Millisecond
	DefaultRetryMax     = 30 * time.Second
)

// serverMaxBatchSize is the server's default MAX_BATCH_SIZE.
const serverMaxBatchSize = audit.DefaultMaxBatchSize

// Option configures a Client; see New.
type Option func(*config)

type config struct {
	httpClient     *http.Client
	tlsConfig      *tls.Config
	token          func(context.Context) (string, error)
	batchSize      int
	batchAge       time.Duration
	maxBatchBytes  int
	bufferSize     int
	nonBlocking    bool
	onFailure      func(Failure)
	metrics        Metrics
	logger         *slog.Logger
	requestTimeout time.Duration
	retryInitial   time.Duration
	retryMax       time.Duration
	rules          audit.Rules
}

func defaultConfig() config {
	return config{
		batchSize:      DefaultBatchSize,
		batchAge:       DefaultBatchAge,
		maxBatchBytes:  DefaultMaxBatchBytes,
		bufferSize:     DefaultBufferSize,
		requestTimeout: DefaultRequestTimeout,
		retryInitial:   DefaultRetryInitial,
		retryMax:       DefaultRetryMax,
		rules:          audit.DefaultRules(),
		metrics:        nopMetrics{},
	}
}

// validate reports every unusable setting at once.
func (c *config) validate() error {
	var errs []error
	if c.batchSize < 1 || c.batchSize > serverMaxBatchSize {
		errs = append(errs, fmt.Errorf("batch size must be 1–%d, got %d", serverMaxBatchSize, c.batchSize))
	}
	if c.batchAge <= 0 {
		errs = append(errs, fmt.Errorf("batch age must be positive, got %s", c.batchAge))
	}
	if c.maxBatchBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("max batch bytes must be at least 1024, got %d", c.maxBatchBytes))
	}
	if c.bufferSize < 1 {
		errs = append(errs, fmt.Errorf("buffer size must be at least 1, got %d", c.bufferSize))
	}
	if c.requestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request timeout must be positive, got %s", c.requestTimeout))
	}
	if c.retryInitial <= 0 || c.retryMax < c.retryInitial {
		errs = append(errs, fmt.Errorf("retry waits must be 0 < initial <= max, got %s and %s", c.retryInitial, c.retryMax))
	}
	if c.httpClient != nil && c.tlsConfig != nil {
		errs = append(errs, errors.New("WithTLSConfig and WithHTTPClient exclude each other: set the TLS configuration on the transport of your client"))
	}
	if err := c.rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// WithToken sends Authorization: Bearer token with every request.
func WithToken(token string) Option {
	return func(c *config) {
		c.token = func(context.Context) (string, error) { return token, nil }
	}
}

// WithTokenSource calls source before every request for the bearer token,
// for tokens that expire (an OIDC token, a Kubernetes service-account token
// file). An error from source is retried like a failed request.
func WithTokenSource(source func(ctx context.Context) (string, error)) Option {
	return func(c *config) { c.token = source }
}

// WithHTTPClient sends requests with hc instead of a client of the
// package's own (which clones http.DefaultTransport). Its Timeout, if any,
// applies on top of WithRequestTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient = hc }
}

// WithTLSConfig sets the TLS configuration of the package's own transport:
// a private CA (RootCAs), or a client certificate for mutual TLS.
func WithTLSConfig(tc *tls.Config) Option {
	return func(c *config) { c.tlsConfig = tc }
}

// WithBatchSize sets how many events one batch request carries at most
// (default 500, at most the server's 5,000).
func WithBatchSize(n int) Option {
	return func(c *config) { c.batchSize = n }
}

// WithBatchAge sets how long an event waits at most for its batch to fill
// before the batch is sent anyway (default 1 s).
func WithBatchAge(d time.Duration) Option {
	return func(c *config) { c.batchAge = d }
}

// WithMaxBatchBytes sets the largest body of one batch request (default
// 8 MiB); a batch is sent early rather than grow past it. Keep it below the
// server's MAX_BATCH_BODY_BYTES. Should the server still answer 413, the
// batch is split in halves and sent again.
func WithMaxBatchBytes(n int) Option {
	return func(c *config) { c.maxBatchBytes = n }
}

// WithBufferSize sets how many events wait in memory for their batch
// (default 10,000); the batch being sent holds up to WithBatchSize more.
// When it is full, Send blocks until there is room, or returns
// ErrBufferFull with WithNonBlockingSend.
func WithBufferSize(n int) Option {
	return func(c *config) { c.bufferSize = n }
}

// WithNonBlockingSend makes Send return ErrBufferFull at once when the
// buffer is full, instead of waiting for room. The event is then not
// taken: what to do with it is the caller's decision, never a silent drop.
func WithNonBlockingSend() Option {
	return func(c *config) { c.nonBlocking = true }
}

// WithFailureHandler sets the function told about every event that will
// never be delivered (see Failure). It is called from the client's sending
// goroutine: it must not block for long, and must not call Send, Flush or
// Close, which may wait for that goroutine.
// Without one, failures are logged at error level.
func WithFailureHandler(f func(Failure)) Option {
	return func(c *config) { c.onFailure = f }
}

// WithMetrics sets the receiver of the client's counters (see Metrics).
func WithMetrics(m Metrics) Option {
	return func(c *config) { c.metrics = m }
}

// WithLogger sets the logger of retries and, without a failure handler,
// of failures (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithRequestTimeout bounds one request, answer included (default 30 s).
// Keep it above the server's PUBLISH_TIMEOUT.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) { c.requestTimeout = d }
}

// WithRetryWait sets the bounds of the jittered exponential wait between
// attempts (default 200 ms growing to 30 s). A Retry-After answer waits at
// least as long as the server asks, whatever the bounds.
func WithRetryWait(initial, maxWait time.Duration) Option {
	return func(c *config) { c.retryInitial, c.retryMax = initial, maxWait }
}

// WithCategories sets the event_category values the server accepts, when
// its EVENT_CATEGORIES differs from the default list (the Category
// constants).
func WithCategories(categories ...string) Option {
	return func(c *config) { c.rules.Categories = categories }
}

// WithMaxEventDataBytes sets the server's MAX_EVENT_DATA_BYTES, when it
// differs from the default 64 KiB.
func WithMaxEventDataBytes(n int) Option {
	return func(c *config) { c.rules.MaxEventDataBytes = n }
}

// WithMaxFutureSkew sets the server's MAX_FUTURE_SKEW, when it differs from
// the default 5 minutes.
func WithMaxFutureSkew(d time.Duration) Option {
	return func(c *config) { c.rules.MaxFutureSkew = d }
}
