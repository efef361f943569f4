// Package api owns the HTTP surface of ingest-api: the gin router, the write
// and read handlers of the Audit Write API (SPEC 2.2–2.5), RFC 7807 problems, request
// limits, and the operations endpoints. It validates with package audit and
// declares the small interfaces it needs to publish and to check duplicates.
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/api/openapi"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/provenance"
	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// publisher takes records and returns once Kafka has acknowledged all of
// them; any error means the client must be told 503.
type publisher interface {
	Publish(ctx context.Context, records []kafka.Record) error
}

// notificationReserver looks a notification_id up in PostgreSQL and takes
// the id the stored row will carry, in one round trip.
type notificationReserver interface {
	ReserveNotification(ctx context.Context, notificationID string) (exists bool, id int64, err error)
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
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed for
	// the client address in logs (TRUSTED_PROXIES); none by default, so a
	// client cannot choose the address it is logged with.
	TrustedProxies []string
}

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
	return errors.Join(errs...)
}

// Deps are the collaborators of the handlers.
type Deps struct {
	Publisher     publisher
	Notifications notificationReserver
	Events        eventReader
	// Holds keeps the legal holds.
	Holds holdStore
	// Auth names the principal of each /api/v1 request (auth.Disabled
	// when AUTH_DISABLED=true).
	Auth authenticator
	// Limiter rate-limits each principal; nil: no limit.
	Limiter    rateLimiter
	Health     *telemetry.Health
	Log        *zap.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now. Tests set it to check the
	// future-timestamp rule at its boundary.
	Now func() time.Time
	// Signer signs each record's principal header (SOURCE_KEYS_FILE); nil
	// sends the name unsigned, which the writer stores as an unverified
	// kafka:<name> (SOURCE_SIGNING_DISABLED).
	Signer principalSigner
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
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies: %w", err)
	}
	r.Use(requestID(), observe(deps.Log, newHTTPMetrics(deps.Registerer)), recovery(deps.Log))

	guard := newAccess(deps.Auth, deps.Limiter, deps.Log, deps.Registerer)
	w := newWriteHandlers(cfg, deps, guard)
	v1 := r.Group("/api/v1/audit", guard.authorize)
	v1.POST("/events", w.createEvent)
	v1.POST("/events/batch", w.createEventsBatch)
	v1.POST("/notifications", w.createNotification)
	rd := &readHandlers{events: deps.Events, now: deps.Now, access: guard}
	v1.GET("/events", rd.queryEvents)
	v1.GET("/events/:event_id", rd.getEvent)
	holds := &holdHandlers{holds: deps.Holds, access: guard, log: deps.Log, maxBody: cfg.MaxBodyBytes,
		system: selfaudit.New(deps.Publisher, deps.Signer, cfg.EventsTopic, "ingest-api")}
	v1.POST("/legal-hold", holds.place)
	v1.GET("/legal-hold", holds.list)
	v1.DELETE("/legal-hold/*correlation_id", holds.release)

	r.GET("/health", gin.WrapH(deps.Health.HealthHandler()))
	r.GET("/health/live", gin.WrapH(deps.Health.LiveHandler()))
	r.GET("/health/ready", gin.WrapH(deps.Health.ReadyHandler()))
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
