package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/spool"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// retryAfterSeconds is what a 503 asks clients to wait: long enough for the
// producer to reconnect or a partition leader to be elected.
const retryAfterSeconds = "5"

type writeHandlers struct {
	cfg     Config
	pub     message.Publisher
	notif   notificationReserver
	log     *zap.Logger
	seed    *telemetry.SeedMetrics
	now     func() time.Time
	headers []kafka.Header
	access  *access
	signer  principalSigner
	// tracer is nil when tracing is off.
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

func newWriteHandlers(cfg Config, deps Deps, a *access) *writeHandlers {
	w := &writeHandlers{
		access: a,
		cfg:    cfg,
		pub:    deps.Publisher,
		notif:  deps.Notifications,
		log:    deps.Log,
		seed:   telemetry.NewSeedMetrics(deps.Registerer),
		now:    deps.Now,
		signer: deps.Signer,
		headers: []kafka.Header{
			{Key: []byte(kafka.HeaderContentType), Value: []byte("application/json")},
			{Key: []byte(kafka.HeaderSource), Value: []byte("ingest-api")},
		},
	}
	if deps.Tracing.Enabled() {
		w.tracer = deps.Tracing.Tracer("github.com/auditstream/auditstream/internal/api")
		w.propagator = deps.Tracing.Propagator()
	}
	return w
}

// outgoing is one record a request publishes.
type outgoing struct {
	// id names the message (the event or notification id); it is not
	// published.
	id      string
	key     string
	value   []byte
	headers []kafka.Header
}

// AuditEventResponse is the 201 (or, spooled, 202) answer to a single event.
type AuditEventResponse struct {
	EventID        uuid.UUID `json:"event_id"`
	EventTimestamp time.Time `json:"event_timestamp"`
	Message        string    `json:"message"`
}

// BatchAuditEventResponse is the 201 (or, spooled, 202) answer to a batch.
type BatchAuditEventResponse struct {
	EventIDs []uuid.UUID `json:"event_ids"`
	Message  string      `json:"message"`
}

// AcceptedResponse is the 202 answer to a notification whose duplicate
// check could not run, or that was spooled (SPEC 2.4's 202 shape, which
// the seed's clients expect of a 202 on this route).
type AcceptedResponse struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func (w *writeHandlers) createEvent(c *gin.Context) {
	acceptedAt := w.now()
	body, ok := readJSONBody(c, w.cfg.MaxBodyBytes)
	if !ok {
		w.seed.Failed(telemetry.SeedEvent, 1)
		return
	}
	ev, err := w.cfg.Rules.ParseEvent(body, acceptedAt)
	if err != nil {
		w.rejectInvalid(c, telemetry.SeedEvent, err)
		return
	}
	if !w.access.mayWrite(c, []*string{ev.Namespace}) {
		return
	}
	if ev.EventID == uuid.Nil {
		ev.EventID = audit.NewEventID()
	}
	out, _ := w.publish(c, telemetry.SeedEvent, w.cfg.EventsTopic, []outgoing{w.eventRecord(principalName(c), &ev)}, []uuid.UUID{ev.EventID})
	if out == answered {
		return
	}
	w.seed.Lag(telemetry.SeedEvent).Observe(lagSeconds(acceptedAt, ev.EventTimestamp))
	res := AuditEventResponse{EventID: ev.EventID, EventTimestamp: ev.EventTimestamp, Message: "audit event accepted"}
	status := http.StatusCreated
	if out == spooled {
		res.Message = "audit event accepted into the local spool" + spooledNote
		status = http.StatusAccepted
	}
	c.Data(status, jsonContentType, res.appendJSON(make([]byte, 0, 160)))
}

// jsonContentType is what gin's c.JSON answers with.
const jsonContentType = "application/json; charset=utf-8"

// appendJSON appends r as encoding/json writes it (TestEventResponseJSON
// holds them equal), without reflection: the answer to every single-event
// request, where c.JSON cost about 5 % of the API's CPU. Message is one of
// createEvent's constants, which need no escaping.
func (r AuditEventResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"event_id":`...)
	b = audit.AppendQuotedUUID(b, r.EventID)
	b = append(b, `,"event_timestamp":"`...)
	b = r.EventTimestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","message":"`...)
	b = append(b, r.Message...)
	return append(b, `"}`...)
}

func (w *writeHandlers) createEventsBatch(c *gin.Context) {
	acceptedAt := w.now()
	body, ok := readJSONBody(c, w.cfg.MaxBatchBodyBytes)
	if !ok {
		w.seed.Failed(telemetry.SeedEvent, 1)
		return
	}
	events, err := w.cfg.Rules.ParseEventBatch(body, acceptedAt, w.cfg.MaxBatchSize)
	if err != nil {
		w.rejectInvalid(c, telemetry.SeedEvent, err)
		return
	}
	namespaces := make([]*string, len(events))
	for i := range events {
		namespaces[i] = events[i].Namespace
	}
	// The request paid one token on arrival; a batch costs one per event.
	if !w.access.mayWrite(c, namespaces) || !w.access.charge(c, len(events)-1) {
		return
	}
	records := make([]outgoing, len(events))
	ids := make([]uuid.UUID, len(events))
	principal := principalName(c)
	for i := range events {
		if events[i].EventID == uuid.Nil {
			events[i].EventID = audit.NewEventID()
		}
		ids[i] = events[i].EventID
		records[i] = w.eventRecord(principal, &events[i])
	}
	out, _ := w.publish(c, telemetry.SeedEvent, w.cfg.EventsTopic, records, ids)
	if out == answered {
		return
	}
	lag := w.seed.Lag(telemetry.SeedEvent)
	for i := range events {
		lag.Observe(lagSeconds(acceptedAt, events[i].EventTimestamp))
	}
	if out == spooled {
		c.JSON(http.StatusAccepted, BatchAuditEventResponse{
			EventIDs: ids,
			Message:  fmt.Sprintf("%d audit events accepted into the local spool", len(ids)) + spooledNote,
		})
		return
	}
	c.JSON(http.StatusCreated, BatchAuditEventResponse{
		EventIDs: ids,
		Message:  fmt.Sprintf("%d audit events accepted", len(ids)),
	})
}

func (w *writeHandlers) createNotification(c *gin.Context) {
	acceptedAt := w.now()
	body, ok := readJSONBody(c, w.cfg.MaxBodyBytes)
	if !ok {
		w.seed.Failed(telemetry.SeedNotification, 1)
		return
	}
	n, err := w.cfg.Rules.ParseNotification(body, acceptedAt)
	if err != nil {
		w.rejectInvalid(c, telemetry.SeedNotification, err)
		return
	}
	if !w.access.mayWriteUnscoped(c) {
		return
	}

	// Identity and timestamps belong to the service, whatever the client
	// sent. The reservation hands out the id, and for a retry of a record
	// it holds already, that record's id and created_at, so every answer
	// is what is stored. Without the check there is no id to hand out: the
	// writer takes one from the same sequence when it stores the record.
	n.ID = 0
	n.CreatedAt = acceptedAt.UTC().Truncate(time.Microsecond)
	checkCtx, cancel := context.WithTimeout(c.Request.Context(), w.cfg.DuplicateCheckTimeout)
	principal := principalName(c)
	res, checkErr := w.notif.ReserveNotification(checkCtx, n.NotificationID, n.ContentDigest(principal), n.CreatedAt)
	cancel()
	if checkErr == nil {
		switch res.State {
		case audit.Stored:
			w.seed.Failed(telemetry.SeedNotification, 1)
			abortProblem(c, probDuplicate, fmt.Sprintf("A notification audit record with notification_id %q is already stored.", n.NotificationID))
			return
		case audit.HeldByOther:
			w.seed.Failed(telemetry.SeedNotification, 1)
			abortProblem(c, probDuplicate, fmt.Sprintf("A different notification audit record with notification_id %q has been accepted and is being stored; only that same record may be sent again.", n.NotificationID))
			return
		}
		n.ID, n.CreatedAt = res.ID, res.CreatedAt
	}
	n.UpdatedAt = n.CreatedAt

	value := n.AppendJSON(nil)
	rec := outgoing{id: n.NotificationID, key: n.NotificationID, value: value,
		headers: w.recordHeaders(principal, n.NotificationID, value)}
	out, err := w.publish(c, telemetry.SeedNotification, w.cfg.NotificationsTopic, []outgoing{rec}, nil)
	if out == answered {
		if checkErr == nil && res.State == audit.Reserved && nothingTaken(err) {
			w.release(c, n.NotificationID, n.ID)
		}
		return
	}
	w.seed.Lag(telemetry.SeedNotification).Observe(lagSeconds(acceptedAt, n.SentAt))
	if checkErr == nil && out == published {
		c.JSON(http.StatusCreated, n)
		return
	}
	msg := "Notification audit record published"
	if out == spooled {
		msg = "Notification audit record accepted into the local spool" + spooledNote
	}
	if checkErr != nil {
		w.log.Warn("notification accepted without duplicate check",
			zap.String("request_id", c.GetString(requestIDKey)),
			zap.String("notification_id", n.NotificationID), zap.Error(checkErr))
		w.seed.AcceptedWithoutDuplicateCheck(telemetry.SeedNotification)
		msg += "; the duplicate check was unavailable, so the writer de-duplicates it on notification_id."
	}
	c.JSON(http.StatusAccepted, AcceptedResponse{Status: "accepted", Message: msg})
}

// nothingTaken reports whether a failed publish certainly wrote nothing:
// not a timeout, after which the records may still be written.
func nothingTaken(err error) bool {
	var perr *kafka.PublishError
	return errors.As(err, &perr) && !perr.Uncertain && perr.Failed == perr.Total
}

// release gives up the hold on a notification_id whose record Kafka did not
// take, so that the 503 leaves the notification_id free for any record.
// If that fails the hold stays until it expires: the same record can still
// be retried, a different one gets 409 until then.
func (w *writeHandlers) release(c *gin.Context, notificationID string, id int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), w.cfg.DuplicateCheckTimeout)
	defer cancel()
	if err := w.notif.ReleaseNotification(ctx, notificationID, id); err != nil {
		w.log.Warn("notification reservation not released; it expires by itself",
			zap.String("request_id", c.GetString(requestIDKey)),
			zap.String("notification_id", notificationID), zap.Error(err))
	}
}

// eventRecord is the Kafka record of an event: its canonical JSON, written
// directly (json.Marshal would re-scan and compact it, a measurable share of
// a request), keyed by correlation_id, with principal signed on it.
func (w *writeHandlers) eventRecord(principal string, ev *audit.Event) outgoing {
	id, value := ev.EventID.String(), ev.AppendJSON(nil)
	return outgoing{id: id, key: ev.CorrelationID, value: value, headers: w.recordHeaders(principal, id, value)}
}

// outcome is what became of a request's records.
type outcome int

const (
	// published: Kafka acknowledged every record (201).
	published outcome = iota
	// spooled: the local spool has them on disk, Kafka not yet (202).
	spooled
	// answered: neither took them; the client has been answered 503.
	answered
)

// spooledNote ends the message of a 202 for spooled records.
const spooledNote = ": Kafka is unavailable; it is published to Kafka, in order, once Kafka is back (accepted, not yet stored)."

// publish sends the records to topic, as watermill messages of one Publish
// call, and answers 503 when neither Kafka nor the local spool (when there
// is one, SPOOL_DIR) took all of them, returning why. The event ids travel
// with the 503 so that a retry carrying them is idempotent even if some
// records did land.
func (w *writeHandlers) publish(c *gin.Context, kind telemetry.SeedRecord, topic string, records []outgoing, ids []uuid.UUID) (outcome, error) {
	start := time.Now()
	ctx := c.Request.Context()
	var traceHeaders []kafka.Header
	var span trace.Span
	if w.tracer != nil {
		ctx, span = w.tracer.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.destination.name", topic),
				attribute.Int("messaging.batch.message_count", len(records)),
			))
		defer span.End()
		w.propagator.Inject(ctx, (*kafka.HeaderCarrier)(&traceHeaders))
	}
	msgs := make([]*message.Message, len(records))
	for i, r := range records {
		// The trace context goes last, after the headers the principal's
		// signature was computed with.
		msgs[i] = kafka.NewMessage(r.id, []byte(r.key), r.value, append(r.headers, traceHeaders...))
		msgs[i].SetContext(ctx)
	}
	err := w.pub.Publish(topic, msgs...)
	if errors.Is(err, spool.ErrSpooled) {
		if span != nil {
			span.SetAttributes(attribute.Bool("auditstream.spooled", true))
		}
		w.seed.Written(kind, len(records), time.Since(start))
		return spooled, nil
	}
	if span != nil && err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	if err == nil {
		w.seed.Written(kind, len(records), time.Since(start))
		return published, nil
	}
	w.seed.Failed(kind, len(records))
	_ = c.Error(err)
	kind503, detail := probKafka, "Kafka did not acknowledge the records; nothing was accepted. Retry later."
	var perr *kafka.PublishError
	switch {
	case errors.Is(err, spool.ErrFull):
		kind503, detail = probSpoolFull, "Kafka cannot take the records and the local spool is full (SPOOL_MAX_BYTES); nothing was accepted. Retry later with the same ids: the spool empties as soon as Kafka is back."
	case errors.Is(err, spool.ErrUnwritable) || errors.Is(err, spool.ErrClosed):
		kind503, detail = probSpoolUnavailable, "Kafka cannot take the records and the local spool cannot be written ("+diskReason(err)+"); nothing was accepted. Retry later with the same ids."
	case errors.As(err, &perr) && perr.TooLarge:
		// No retry can deliver it: a client error, not an outage.
		abortProblem(c, probTooLarge, fmt.Sprintf("Kafka refused %d of %d records for their size (over KAFKA_MAX_MESSAGE_BYTES or the topic's max.message.bytes); the request was not accepted. Send smaller events or fewer at once; records it took are duplicates if sent again.",
			perr.Failed, perr.Total), withEventIDs(ids))
		return answered, err
	case errors.As(err, &perr):
		switch {
		case perr.Uncertain:
			detail = "Kafka did not answer in time; the records may or may not have been written. Retry with the same ids."
		case perr.Failed < perr.Total:
			detail = fmt.Sprintf("Kafka took %d of %d records; the request as a whole was not accepted. Retry all of them with the same ids.",
				perr.Total-perr.Failed, perr.Total)
		}
	}
	if ids != nil {
		detail += " The event_ids member lists the ids to reuse."
	}
	c.Header("Retry-After", retryAfterSeconds)
	abortProblem(c, kind503, detail, withEventIDs(ids))
	return answered, err
}

// diskReason is why the spool could not write, for a problem's detail: the
// system's words (read-only file system, no space left on device) without
// the paths, which the log has.
func diskReason(err error) string {
	if errors.Is(err, spool.ErrClosed) {
		return "the API is shutting down"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err.Error()
	}
	return "see the ingest-api log"
}

// rejectInvalid answers 400 for a record or batch that failed validation,
// naming every bad field, and counts each one.
func (w *writeHandlers) rejectInvalid(c *gin.Context, kind telemetry.SeedRecord, err error) {
	w.seed.Failed(kind, 1)
	var fe audit.FieldErrors
	if errors.As(err, &fe) {
		for _, e := range fe {
			w.seed.ValidationFailure(e.Name(), e.Reason)
		}
	} else {
		reason := "malformed"
		var be *audit.BodyError
		if errors.As(err, &be) {
			reason = be.Reason()
		}
		w.seed.ValidationFailure("body", reason)
	}
	answerInvalid(c, err)
}

// answerInvalid answers 400 for a body audit's parsers refused: every bad
// field, or what is wrong with the document.
func answerInvalid(c *gin.Context, err error) {
	var fe audit.FieldErrors
	if errors.As(err, &fe) {
		abortProblem(c, probValidation, fmt.Sprintf("%d field(s) failed validation; see field_errors.", len(fe)),
			withFieldErrors(fe.Map()))
		return
	}
	abortProblem(c, probMalformed, err.Error())
}

// readJSONBody enforces the content type and coding (415) and the body
// limit (413), decodes a gzip body, and returns the JSON; on failure it has
// already answered. The limit applies both to the body as sent and to what
// it decodes to.
func readJSONBody(c *gin.Context, limit int64) ([]byte, bool) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			abortProblem(c, probMediaType, fmt.Sprintf("Content-Type %q is not supported; send application/json.", ct))
			return nil, false
		}
	}
	gz, ok := gzipped(c)
	if !ok {
		return nil, false
	}
	if c.Request.ContentLength > limit {
		abortProblem(c, probTooLarge, fmt.Sprintf("The body is %d bytes; the limit is %d.", c.Request.ContentLength, limit))
		return nil, false
	}
	size := c.Request.ContentLength
	if size < 0 || size > 64<<10 || gz {
		size = 64 << 10 // grow past a hint we cannot trust
	}
	var body io.Reader = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	if gz {
		var err error
		if body, err = gunzip(c.Writer, body, limit); err != nil {
			abortProblem(c, probMalformed, "The request body is "+err.Error()+".")
			return nil, false
		}
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	_, err := buf.ReadFrom(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			abortProblem(c, probTooLarge, fmt.Sprintf("The body exceeds the limit of %d bytes.", limit))
			return nil, false
		}
		abortProblem(c, probMalformed, "The request body could not be read: "+err.Error())
		return nil, false
	}
	if buf.Len() == 0 {
		abortProblem(c, probMalformed, "The request body is empty; send a JSON document.")
		return nil, false
	}
	return buf.Bytes(), true
}

// lagSeconds is how old a record is when accepted; never negative, since a
// timestamp slightly ahead (within the allowed skew) is not a lag.
func lagSeconds(now, t time.Time) float64 {
	return max(now.Sub(t).Seconds(), 0)
}
