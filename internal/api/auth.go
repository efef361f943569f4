package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/query"
)

// publicRoute marks a route that needs no credential; anyScope one that
// needs a credential but no particular scope.
const (
	publicRoute auth.Scope = ""
	anyScope    auth.Scope = "any"
)

// routeScopes is the one table of what each /api/v1 route requires (SPEC
// 8.1), keyed by method and gin route pattern. NewHandler refuses to build
// a router with an /api/v1 route missing here, so a new route cannot ship
// open by accident: add its line when you add the route.
var routeScopes = map[string]auth.Scope{
	"POST /api/v1/audit/events":          auth.ScopeWrite,
	"POST /api/v1/audit/events/batch":    auth.ScopeWrite,
	"POST /api/v1/audit/notifications":   auth.ScopeWrite,
	"GET /api/v1/audit/events":           auth.ScopeRead,
	"GET /api/v1/audit/events/:event_id": auth.ScopeRead,
	"GET /api/v1/audit/events/histogram": auth.ScopeRead,
	// Who the caller is: the console's first call, for any credential.
	"GET /api/v1/audit/whoami": anyScope,
	// A restricted principal verifies and exports only within its
	// namespaces (integrityHandlers.visible, restrictReads).
	"POST /api/v1/audit/verify-chain": auth.ScopeRead,
	"GET /api/v1/audit/export":        auth.ScopeRead,
	// Whoever verifies a checkpoint needs its key, credential or not.
	"GET /api/v1/audit/checkpoints/public-key":        publicRoute,
	"GET /api/v1/audit/legal-hold":                    auth.ScopeRead,
	"POST /api/v1/audit/legal-hold":                   auth.ScopeAdmin,
	"DELETE /api/v1/audit/legal-hold/*correlation_id": auth.ScopeAdmin,
	// The detailed health report names hosts, ports, users and brokers:
	// operators only (the open /health names components and states).
	"GET /api/v1/audit/health": auth.ScopeAdmin,
}

// authenticator names the principal behind a request; a refused credential
// is an *auth.Error.
type authenticator interface {
	Authenticate(r *http.Request) (auth.Principal, error)
}

// rateLimiter takes n tokens from a principal's bucket.
type rateLimiter interface {
	Allow(principal string, n int) (ok bool, retryAfter time.Duration)
}

// Denial reasons besides the credential ones of package auth; together
// they are the bounded label set of auditstream_auth_denied_total.
const (
	reasonMissingScope = "missing_scope"
	reasonNamespace    = "namespace"
	reasonRateLimited  = "rate_limited"
)

var denialReasons = []string{
	string(auth.ReasonMissing), string(auth.ReasonMalformed), string(auth.ReasonTooLarge),
	string(auth.ReasonUnknownToken), string(auth.ReasonInvalidJWT), string(auth.ReasonExpiredJWT),
	string(auth.ReasonKeysUnavailable), string(auth.ReasonReservedPrincipal), reasonMissingScope, reasonNamespace, reasonRateLimited,
}

// access enforces routeScopes, namespace restrictions and rate limits.
type access struct {
	authn   authenticator
	limiter rateLimiter // nil: no limit
	log     *zap.Logger
	denied  *prometheus.CounterVec
}

func newAccess(authn authenticator, limiter rateLimiter, log *zap.Logger, reg prometheus.Registerer) *access {
	denied := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "auditstream_auth_denied_total",
		Help: "API requests refused for who sent them: no or a bad credential (401), a missing scope or namespace (403), over the rate limit (429), by reason.",
	}, []string{"reason"})
	for _, r := range denialReasons {
		denied.WithLabelValues(r) // present at 0, so rates and alerts work from the start
	}
	return &access{authn: authn, limiter: limiter, log: log, denied: denied}
}

// checkRoutes reports /api routes that routeScopes does not cover.
func checkRoutes(routes gin.RoutesInfo) error {
	var missing []string
	for _, r := range routes {
		key := r.Method + " " + r.Path
		if _, ok := routeScopes[key]; !ok && strings.HasPrefix(r.Path, "/api/") {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("api: routes without an entry in routeScopes: %s", strings.Join(missing, ", "))
	}
	return nil
}

// authorize is the middleware of the /api/v1 routes: it authenticates,
// checks the route's scope, charges the request's first token and puts the
// principal on the request context (auth.PrincipalFrom). It runs before a
// body is read, so a refused request costs no parsing and reaches neither
// Kafka nor PostgreSQL.
func (a *access) authorize(c *gin.Context) {
	scope, ok := routeScopes[c.Request.Method+" "+c.FullPath()]
	if ok && scope == publicRoute {
		c.Next()
		return
	}
	p, err := a.authn.Authenticate(c.Request)
	if err != nil {
		a.unauthenticated(c, err)
		return
	}
	if !ok || (scope != anyScope && !p.HasScope(scope)) {
		a.deny(c, p.Name, reasonMissingScope, nil)
		c.Header("WWW-Authenticate", fmt.Sprintf(`Bearer realm="auditstream", error="insufficient_scope", scope=%q`, scope))
		abortProblem(c, probForbidden, fmt.Sprintf("This credential lacks the scope %s, which %s %s requires.", scope, c.Request.Method, c.FullPath()),
			withRequiredScope(scope))
		return
	}
	c.Request = c.Request.WithContext(auth.WithPrincipal(c.Request.Context(), p))
	if !a.charge(c, 1) {
		return
	}
	c.Next()
}

// unauthenticated answers 401 with the RFC 6750 challenge. The detail says
// what kind of credential problem it is, never whether the resource asked
// for exists.
func (a *access) unauthenticated(c *gin.Context, err error) {
	reason := auth.ReasonUnknownToken
	var ae *auth.Error
	if errors.As(err, &ae) {
		reason = ae.Reason
	}
	a.deny(c, "", string(reason), err)
	challenge := `Bearer realm="auditstream"`
	detail := "The bearer token is not valid here: unknown, revoked, or not issued for this service."
	switch reason {
	case auth.ReasonMissing:
		// RFC 6750 section 3.1: no error code when no credential was sent.
		detail = "This route needs a credential: send Authorization: Bearer <token>."
	case auth.ReasonMalformed:
		challenge += `, error="invalid_request"`
		detail = "The Authorization header must be exactly one \"Bearer <token>\"."
	case auth.ReasonTooLarge:
		challenge += `, error="invalid_token"`
		detail = fmt.Sprintf("The bearer token is longer than %d bytes, more than any credential this service accepts.", auth.MaxTokenBytes)
	case auth.ReasonExpiredJWT:
		challenge += `, error="invalid_token", error_description="the token expired"`
		detail = "The bearer token has expired; get a new one from its issuer."
	case auth.ReasonKeysUnavailable:
		challenge += `, error="invalid_token"`
		detail = "The bearer token could not be verified now: its issuer's keys are unavailable. Retry later."
	default:
		challenge += `, error="invalid_token"`
	}
	c.Header("WWW-Authenticate", challenge)
	abortProblem(c, probUnauthenticated, detail)
}

// charge takes n tokens from the principal's bucket, or answers 429.
func (a *access) charge(c *gin.Context, n int) bool {
	if a.limiter == nil || n <= 0 {
		return true
	}
	p, _ := auth.PrincipalFrom(c.Request.Context())
	ok, wait := a.limiter.Allow(p.Name, n)
	if ok {
		return true
	}
	a.deny(c, p.Name, reasonRateLimited, nil)
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.Header("Retry-After", strconv.Itoa(secs))
	abortProblem(c, probRateLimited, fmt.Sprintf("This credential is over its rate limit (this request costs %d); retry in %d s.", n, secs))
	return false
}

// mayWrite answers 403 unless the principal may write every one of the
// namespaces (nil: a record without one). A restricted principal may not
// write records outside its namespaces, nor records without a namespace.
func (a *access) mayWrite(c *gin.Context, namespaces []*string) bool {
	p, _ := auth.PrincipalFrom(c.Request.Context())
	if !p.Restricted() {
		return true
	}
	var bad []string
	for i, ns := range namespaces {
		if ns == nil || !p.MayUseNamespace(*ns) {
			bad = append(bad, strconv.Itoa(i))
		}
	}
	if len(bad) == 0 {
		return true
	}
	where := "The record has"
	if len(namespaces) > 1 {
		where = fmt.Sprintf("Elements [%s] have", strings.Join(bad, ", "))
	}
	a.forbidNamespace(c, p, fmt.Sprintf("%s no namespace or one outside those this credential may write (%s); nothing was accepted.",
		where, strings.Join(p.Namespaces, ", ")))
	return false
}

// mayWriteUnscoped answers 403 to a restricted principal: notifications
// carry no namespace, and a team's credential must not claim other teams'
// notification_ids.
func (a *access) mayWriteUnscoped(c *gin.Context) bool {
	return a.mayUseUnscoped(c, "Notification records carry no namespace, so a credential limited to namespaces may not write them; nothing was accepted.")
}

// mayUseUnscoped answers 403, saying why, to a principal limited to
// namespaces, for what belongs to no namespace.
func (a *access) mayUseUnscoped(c *gin.Context, why string) bool {
	p, _ := auth.PrincipalFrom(c.Request.Context())
	if !p.Restricted() {
		return true
	}
	a.forbidNamespace(c, p, why)
	return false
}

// restrictReads narrows a query to the principal's namespaces. Naming
// another namespace is answered 403 rather than an empty page: the
// decision follows from the credential alone, so it tells nothing about
// the data, and it tells the caller its query can never match.
func (a *access) restrictReads(c *gin.Context, f *query.Filter) bool {
	p, _ := auth.PrincipalFrom(c.Request.Context())
	if !p.Restricted() {
		return true
	}
	if ns := f.Equal["namespace"]; ns != "" && !p.MayUseNamespace(ns) {
		a.forbidNamespace(c, p, fmt.Sprintf("This credential may only read namespaces %s; namespace=%s is outside them.",
			strings.Join(p.Namespaces, ", "), ns))
		return false
	}
	f.Namespaces = p.Namespaces
	return true
}

// mayRead reports whether the principal may see a stored event of
// namespace ns (nil: none).
func (a *access) mayRead(c *gin.Context, ns *string) bool {
	p, _ := auth.PrincipalFrom(c.Request.Context())
	if !p.Restricted() || (ns != nil && p.MayUseNamespace(*ns)) {
		return true
	}
	a.deny(c, p.Name, reasonNamespace, nil)
	return false
}

func (a *access) forbidNamespace(c *gin.Context, p auth.Principal, detail string) {
	a.deny(c, p.Name, reasonNamespace, nil)
	abortProblem(c, probForbidden, detail)
}

// deny logs and counts a refused request.
func (a *access) deny(c *gin.Context, principal, reason string, cause error) {
	a.denied.WithLabelValues(reason).Inc()
	fields := []zap.Field{
		zap.String("request_id", c.GetString(requestIDKey)),
		zap.String("route", c.FullPath()),
		zap.String("method", c.Request.Method),
		zap.String("reason", reason),
		zap.String("remote_addr", c.ClientIP()),
	}
	if principal != "" {
		fields = append(fields, zap.String("principal", principal))
	}
	if cause != nil {
		fields = append(fields, zap.Error(cause))
	}
	a.log.Warn("request denied", fields...)
}
