// Package api owns the HTTP surface of ingest-api: the gin router, the write
// and read handlers of the Audit Write API (SPEC 2.2–2.5), verify-chain,
// the signed export and the checkpoints' public key (SPEC 9), RFC 7807
// problems, request limits, and the operations endpoints. It validates with package audit and
// declares the small interfaces it needs to publish and to check duplicates.
package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/api/openapi"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/provenance"
	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// notificationReserver holds a notification_id in PostgreSQL for one
// record (by content digest) and takes the id the stored row will carry,
// in one round trip; a hold is released when Kafka took nothing.
type notificationReserver interface {
	ReserveNotification(ctx context.Context, notificationID string, digest [sha256.Size]byte, at time.Time) (audit.Reservation, error)
	ReleaseNotification(ctx context.Context, notificationID string, id int64) error
}

// Config holds the request rules of the write API.
type Config struct {
	Rules audit.Rules
	// MaxBatchSize is the most events in one batch request (default
	// audit.DefaultMaxBatchSize).
	MaxBatchSize          int
	MaxBodyBytes          int64
	MaxBatchBodyBytes     int64
	EventsTopic           string
	NotificationsTopic    string
	DuplicateCheckTimeout time.Duration
	// MaxOffset is the deepest offset a query may ask for (default
	// DefaultMaxOffset); deeper reads page with the cursor.
	MaxOffset int
	// MaxPageBytes caps the encoded events of one query page (default
	// DefaultMaxPageBytes); has_more and next_cursor continue after it.
	MaxPageBytes int
	// WriteTimeout is how long a query page may take to reach the client
	// once it starts (default DefaultWriteTimeout): a client that stops
	// reading is cut off then, and its database connection freed.
	WriteTimeout time.Duration
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed for
	// the client address in logs (TRUSTED_PROXIES); none by default, so a
	// client cannot choose the address it is logged with.
	TrustedProxies []string
	// VerifyTimeout bounds one verify-chain (default
	// DefaultVerifyTimeout); ExportMaxDuration one export (default
	// DefaultExportMaxDuration), after which it ends signed as
	// incomplete.
	VerifyTimeout     time.Duration
	ExportMaxDuration time.Duration
	// MaxConcurrentExports bounds the exports served at once (default
	// DefaultMaxConcurrentExports).
	MaxConcurrentExports int
}

// DefaultWriteTimeout lets a full page of DefaultMaxPageBytes reach a
// client reading at about 420 KB/s, and ends within the default drain time
// after SIGTERM (SHUTDOWN_TIMEOUT).
const DefaultWriteTimeout = 20 * time.Second

// DefaultMaxOffset bounds the offset of a query: skipping 10,000 rows is
// still cheap, and past it a person pages with the cursor, whose cost does
// not grow with depth.
const DefaultMaxOffset = 10000

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBatchSize < 0 {
		errs = append(errs, errors.New("api: max batch size must not be negative"))
	}
	if c.MaxBodyBytes <= 0 || c.MaxBatchBodyBytes <= 0 {
		errs = append(errs, errors.New("api: body limits must be positive"))
	}
	if c.EventsTopic == "" || c.NotificationsTopic == "" {
		errs = append(errs, errors.New("api: topics must be set"))
	}
	if c.DuplicateCheckTimeout <= 0 {
		errs = append(errs, errors.New("api: duplicate check timeout must be positive"))
	}
	if c.MaxOffset < 0 || c.MaxPageBytes < 0 || c.WriteTimeout < 0 || c.VerifyTimeout < 0 || c.ExportMaxDuration < 0 || c.MaxConcurrentExports < 0 {
		errs = append(errs, errors.New("api: max offset, max page bytes and the timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

// Deps are the collaborators of the handlers.
type Deps struct {
	// Publisher returns once Kafka has acknowledged every message of a
	// call (kafka.Publisher, or a decorator of it); any error means the
	// client is told 503. It is watermill's interface so that decorators
	// (a spool, a circuit breaker) wrap it without knowing Kafka.
	Publisher     message.Publisher
	Notifications notificationReserver
	Events        eventReader
	// Holds keeps the legal holds.
	Holds holdStore
	// Auth names the principal of each /api/v1 request (auth.Disabled
	// when AUTH_DISABLED=true).
	Auth authenticator
	// Limiter rate-limits each principal; nil: no limit.
	Limiter rateLimiter
	Health  *telemetry.Health
	Log     *zap.Logger
	// Tracing, when enabled, traces requests (otelgin) and publishes, and
	// puts the trace context in the record headers; nil is off.
	Tracing    *telemetry.Tracing
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now. Tests set it to check the
	// future-timestamp rule at its boundary.
	Now func() time.Time
	// Console serves the web console under /ui/ (package ui); nil serves
	// none. It is static files that call this API with the user's token,
	// so it passes no access control of its own.
	Console http.Handler
	// Signer signs each record's principal header (SOURCE_KEYS_FILE); nil
	// sends the name unsigned, which the writer stores as an unverified
	// kafka:<name> (SOURCE_SIGNING_DISABLED).
	Signer principalSigner
	// Integrity serves verify-chain, the export and the checkpoints'
	// public key; a route whose parts are nil answers 503
	// integrity-not-configured.
	Integrity Integrity
}

// Integrity are the parts of tamper evidence the API serves (SPEC 9).
type Integrity struct {
	// Verifier verifies chains (verify.Verifier) for verify-chain.
	Verifier chainVerifier
	// CheckpointKeys are the writers' checkpoint public keys, served at
	// GET /api/v1/audit/checkpoints/public-key.
	CheckpointKeys *integrity.PublicKeys
	// Exporter reads exports (query.Reader), ExportSigner signs them
	// (EXPORT_SIGNING_KEY_FILE) and Keys check their chains
	// (INTEGRITY_KEYS_FILE).
	Exporter     eventExporter
	ExportSigner *integrity.Signer
	Keys         *integrity.Keys
}

// NewHandler builds the router with every route of the API.
func NewHandler(cfg Config, deps Deps) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Publisher == nil || deps.Notifications == nil || deps.Events == nil || deps.Holds == nil || deps.Auth == nil ||
		deps.Health == nil || deps.Log == nil || deps.Registerer == nil {
		return nil, errors.New("api: every dependency must be set")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Signer == nil {
		deps.Signer = (*provenance.Keys)(nil)
	}
	if cfg.MaxBatchSize == 0 {
		cfg.MaxBatchSize = audit.DefaultMaxBatchSize
	}
	if cfg.MaxOffset == 0 {
		cfg.MaxOffset = DefaultMaxOffset
	}
	if cfg.MaxPageBytes == 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.VerifyTimeout == 0 {
		cfg.VerifyTimeout = DefaultVerifyTimeout
	}
	if cfg.ExportMaxDuration == 0 {
		cfg.ExportMaxDuration = DefaultExportMaxDuration
	}
	if cfg.MaxConcurrentExports == 0 {
		cfg.MaxConcurrentExports = DefaultMaxConcurrentExports
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies: %w", err)
	}
	if deps.Tracing.Enabled() {
		// Outermost, so that the access log (observe) sees the span.
		r.Use(traceRequests(deps.Tracing))
	}
	r.Use(requestID(), cutOff(), observe(deps.Log, newHTTPMetrics(deps.Registerer)), recovery(deps.Log))

	guard := newAccess(deps.Auth, deps.Limiter, deps.Log, deps.Registerer)
	w := newWriteHandlers(cfg, deps, guard)
	v1 := r.Group("/api/v1/audit", guard.authorize)
	v1.POST("/events", w.createEvent)
	v1.POST("/events/batch", w.createEventsBatch)
	v1.POST("/notifications", w.createNotification)
	rd := &readHandlers{events: deps.Events, now: deps.Now, access: guard,
		maxOffset: cfg.MaxOffset, maxPageBytes: cfg.MaxPageBytes, writeTimeout: cfg.WriteTimeout}
	v1.GET("/events", rd.queryEvents)
	v1.GET("/events/histogram", rd.histogram)
	v1.GET("/events/:event_id", rd.getEvent)
	v1.GET("/whoami", whoami)
	holds := &holdHandlers{holds: deps.Holds, access: guard, log: deps.Log, maxBody: cfg.MaxBodyBytes,
		system: selfaudit.New(deps.Publisher, deps.Signer, cfg.EventsTopic, "ingest-api")}
	v1.POST("/legal-hold", holds.place)
	v1.GET("/legal-hold", holds.list)
	v1.DELETE("/legal-hold/*correlation_id", holds.release)
	v1.GET("/health", gin.WrapH(deps.Health.DetailsHandler()))
	ih := newIntegrityHandlers(cfg, deps, guard)
	v1.POST("/verify-chain", ih.verifyChain)
	v1.GET("/export", ih.export)
	v1.GET("/checkpoints/public-key", ih.publicKey)

	r.GET("/health", gin.WrapH(deps.Health.HealthHandler()))
	r.GET("/health/live", gin.WrapH(deps.Health.LiveHandler()))
	r.GET("/health/ready", gin.WrapH(deps.Health.ReadyHandler()))
	if deps.Console != nil {
		r.GET("/ui/*file", gin.WrapH(deps.Console))
		r.HEAD("/ui/*file", gin.WrapH(deps.Console))
	}
	spec := openapi.YAML()
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", spec) })

	r.NoRoute(func(c *gin.Context) {
		abortProblem(c, probNotFound, "No route for "+c.Request.Method+" "+c.Request.URL.Path+".")
	})
	r.NoMethod(func(c *gin.Context) {
		abortProblem(c, probMethod, "Method "+c.Request.Method+" is not allowed on "+c.Request.URL.Path+".")
	})
	if err := checkRoutes(r.Routes()); err != nil {
		return nil, err
	}
	return r, nil
}
