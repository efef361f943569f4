package api

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/telemetry"
)

const (
	headerRequestID = "X-Request-ID"
	requestIDKey    = "request_id"
	maxRequestIDLen = 128
)

// requestID echoes a sane X-Request-ID or generates one, so every answer and
// its access-log line can be tied together.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(headerRequestID)
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		c.Set(requestIDKey, id)
		c.Header(headerRequestID, id)
		c.Next()
	}
}

// validRequestID accepts printable ASCII up to a length bound, so a client
// cannot inject control characters or huge values into logs and headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series caches the series of each route, method and status seen:
	// looking them up hashed the label values on every request.
	series sync.Map // seriesKey -> *requestSeries
}

type seriesKey struct {
	route, method string
	status        int
}

type requestSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// of returns the series of a request; routes are gin's patterns and
// methods and statuses few, so the cache stays small.
func (m *httpMetrics) of(route, method string, status int) *requestSeries {
	k := seriesKey{route, method, status}
	if s, ok := m.series.Load(k); ok {
		return s.(*requestSeries)
	}
	s, _ := m.series.LoadOrStore(k, &requestSeries{
		requests: m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
		duration: m.duration.WithLabelValues(route, method),
	})
	return s.(*requestSeries)
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	f := promauto.With(reg)
	return &httpMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_http_requests_total",
			Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditstream_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
}

// observe writes the access log line and the request metrics. The route
// label is gin's route pattern, never the raw path, to bound cardinality.
func observe(log *zap.Logger, m *httpMetrics) gin.HandlerFunc {
	// Every line would name this function as its caller: finding it costs
	// a stack walk per request and tells nothing.
	log = log.WithOptions(zap.WithCaller(false))
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		elapsed := time.Since(start)
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		series := m.of(route, c.Request.Method, status)
		series.requests.Inc()
		series.duration.Observe(elapsed.Seconds())

		fields := []zap.Field{
			zap.String("request_id", c.GetString(requestIDKey)),
			telemetry.TraceID(c.Request.Context()),
			zap.String("method", c.Request.Method),
			zap.String("path", c.Request.URL.Path),
			zap.String("route", route),
			zap.Int("status", status),
			zap.Duration("duration", elapsed),
			zap.Int("bytes_out", c.Writer.Size()),
			zap.String("client_ip", c.ClientIP()),
		}
		if len(c.Errors) > 0 {
			fields = append(fields, zap.String("error", c.Errors.String()))
		}
		switch {
		case status >= 500:
			log.Error("http request", fields...)
		default:
			log.Info("http request", fields...)
		}
	}
}

// traceRequests is otelgin's middleware: a server span per request, a
// child of the caller's traceparent when it sent one (else a new trace),
// named after the route. Probes (/health*) are not traced: they would
// drown the requests in spans.
func traceRequests(t *telemetry.Tracing) gin.HandlerFunc {
	return otelgin.Middleware("ingest-api",
		otelgin.WithTracerProvider(t.Provider()),
		otelgin.WithPropagators(t.Propagator()),
		otelgin.WithGinFilter(func(c *gin.Context) bool { return !strings.HasPrefix(c.FullPath(), "/health") }),
	)
}

// recovery turns a panic in a handler into a logged 500 problem instead of
// a dropped connection.
func recovery(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("handler panic", zap.String("request_id", c.GetString(requestIDKey)),
					zap.Any("panic", r), zap.Stack("stack"))
				_ = c.Error(fmt.Errorf("panic: %v", r))
				abortProblem(c, probInternal, "An unexpected error occurred; it has been logged.")
			}
		}()
		c.Next()
	}
}
