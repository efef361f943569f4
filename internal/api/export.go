package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/query"
)

// eventExporter streams the events of an export from one snapshot
// (query.Reader).
type eventExporter interface {
	Export(ctx context.Context, f query.Filter, fn func(*audit.Event) error) error
}

// DefaultExportMaxDuration bounds an export (EXPORT_MAX_DURATION): the
// export reads one snapshot, which PostgreSQL keeps (holding back vacuum
// of every table) for as long as the client takes. Fifteen minutes move
// gigabytes to a client that keeps up; past them the export ends with a
// signed trailer saying it is incomplete, so a slow reader cannot hold the
// snapshot for hours.
const DefaultExportMaxDuration = 15 * time.Minute

// DefaultMaxConcurrentExports bounds the exports served at once
// (EXPORT_MAX_CONCURRENT): each holds a pooled database connection for as
// long as its client reads, so a few slow exports must not take the
// connections that queries and the notification check need
// (DATABASE_MAX_CONNS, 10 by default).
const DefaultMaxConcurrentExports = 2

// exportResults are the result label values of auditstream_exports_total.
var exportResults = []string{"complete", "incomplete", "aborted", "failed", "busy"}

// exportFields are the fields an export filters on by equality (SPEC 9.4).
var exportFields = func() []audit.Field {
	var out []audit.Field
	for _, f := range filterFields {
		if slices.Contains([]string{"correlation_id", "event_category", "namespace"}, f.Name) {
			out = append(out, f)
		}
	}
	return out
}()

func (h *integrityHandlers) export(c *gin.Context) {
	d := h.deps
	if d.Exporter == nil || d.ExportSigner == nil || d.Keys == nil {
		unconfigured(c, "exports: set EXPORT_SIGNING_KEY_FILE (the Ed25519 key that signs exports) and INTEGRITY_KEYS_FILE")
		return
	}
	now := h.now()
	f, info, bad := parseExport(c, now)
	if len(bad) > 0 {
		abortProblem(c, probQueryParam, fmt.Sprintf("%d query parameter(s) are invalid; see field_errors.", len(bad)), withFieldErrors(bad))
		return
	}
	if !h.access.restrictReads(c, &f) {
		return
	}
	select {
	case h.exportSlots <- struct{}{}:
		defer func() { <-h.exportSlots }()
	default:
		h.exports.WithLabelValues("busy").Inc()
		c.Header("Retry-After", "30")
		abortProblem(c, probExportBusy, fmt.Sprintf("This ingest-api is serving %d exports already (EXPORT_MAX_CONCURRENT); retry later.", cap(h.exportSlots)))
		return
	}
	p, _ := auth.PrincipalFrom(c.Request.Context())
	info.ExportedBy, info.Filters.RestrictedTo = p.Name, f.Namespaces

	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.ExportMaxDuration)
	defer cancel()
	var span trace.Span
	if h.tracer != nil {
		ctx, span = h.tracer.Start(ctx, "export", trace.WithAttributes(attribute.String("auditstream.export_format", info.Format)))
		defer span.End()
	}
	// The client paces the read: each write may wait for it up to
	// HTTP_WRITE_TIMEOUT, the whole export up to EXPORT_MAX_DURATION and
	// then the time to send the trailer.
	rc := longRequest(c, h.cfg.ExportMaxDuration+h.cfg.WriteTimeout)
	out := &exportStream{c: c, rc: rc, stall: h.cfg.WriteTimeout, until: time.Now().Add(h.cfg.ExportMaxDuration + h.cfg.WriteTimeout)}
	ext := ".ndjson"
	c.Header("Content-Type", "application/x-ndjson")
	if info.Format == integrity.ExportJSON {
		ext = ".json"
		c.Header("Content-Type", "application/json; charset=utf-8")
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="auditstream-export-%s%s"`, now.UTC().Format("20060102T150405Z"), ext))

	x := integrity.NewExportWriter(out, d.ExportSigner, d.Keys, info)
	err := d.Exporter.Export(ctx, f, x.Event)
	incomplete := ""
	switch {
	case out.err != nil || c.Request.Context().Err() != nil:
		h.abortExport(c, x, out, err)
		return
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		incomplete = fmt.Sprintf("EXPORT_MAX_DURATION (%s) reached after %d event(s); narrow the time range or the filters", h.cfg.ExportMaxDuration, x.Events())
	case err != nil && !x.Started():
		h.exports.WithLabelValues("failed").Inc()
		readFailed(c, err)
		return
	case err != nil:
		_ = c.Error(err)
		incomplete = fmt.Sprintf("the database failed after %d event(s); export again", x.Events())
	}
	if err := x.Close(incomplete, h.now()); err != nil {
		h.abortExport(c, x, out, err)
		return
	}
	result := "complete"
	if incomplete != "" {
		result = "incomplete"
		h.access.log.Warn("export ended early", zap.String("request_id", c.GetString(requestIDKey)), zap.String("reason", incomplete))
	}
	if span != nil {
		span.SetAttributes(attribute.Int64("auditstream.events", x.Events()), attribute.Bool("auditstream.complete", incomplete == ""))
	}
	h.exports.WithLabelValues(result).Inc()
	h.exportEvents.Add(float64(x.Events()))
	h.exportBytes.Add(float64(out.bytes))
}

// abortExport ends an export that cannot be finished: the connection is
// cut (cutOff), so the client holds a file without its signed trailer,
// which never verifies, rather than a shorter one that would.
func (h *integrityHandlers) abortExport(c *gin.Context, x *integrity.ExportWriter, out *exportStream, err error) {
	h.exports.WithLabelValues("aborted").Inc()
	h.exportEvents.Add(float64(x.Events()))
	h.exportBytes.Add(float64(out.bytes))
	if err != nil {
		_ = c.Error(err)
	}
	c.Set(cutKey, true)
}

// parseExport reads the export's parameters (SPEC 9.4): start_time and
// end_time take the forms of since and until.
func parseExport(c *gin.Context, now time.Time) (query.Filter, integrity.ExportInfo, map[string]string) {
	bad := map[string]string{}
	f := query.Filter{Equal: map[string]string{}}
	info := integrity.ExportInfo{Format: integrity.ExportNDJSON, Time: now}
	parseEquals(c, exportFields, &f, bad)
	parseTimeRange(c, now, "start_time", "end_time", &f, bad)
	info.Filters.CorrelationID, info.Filters.EventCategory, info.Filters.Namespace =
		f.Equal["correlation_id"], f.Equal["event_category"], f.Equal["namespace"]
	if !f.Since.IsZero() {
		info.Filters.StartTime = &f.Since
	}
	if !f.Until.IsZero() {
		info.Filters.EndTime = &f.Until
	}
	if v, ok := c.GetQuery("format"); ok {
		switch v {
		case integrity.ExportNDJSON, integrity.ExportJSON:
			info.Format = v
		default:
			bad["format"] = "must be ndjson or json"
		}
	}
	return f, info, bad
}

// exportStream writes an export to the client: each write may wait for
// the client up to stall (it is cut off after), none past until, and each
// is flushed, so the client holds every byte sent and the server holds at
// most the export writer's buffer.
type exportStream struct {
	c     *gin.Context
	rc    *http.ResponseController
	stall time.Duration
	until time.Time
	bytes int64
	err   error
}

func (s *exportStream) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	deadline := time.Now().Add(s.stall)
	if deadline.After(s.until) {
		deadline = s.until
	}
	_ = s.rc.SetWriteDeadline(deadline)
	n, err := s.c.Writer.Write(p)
	s.bytes += int64(n)
	if err == nil {
		err = s.rc.Flush()
	}
	s.err = err
	return n, err
}
