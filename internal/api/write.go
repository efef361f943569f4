package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// retryAfterSeconds is what a 503 asks clients to wait: long enough for the
// producer to reconnect or a partition leader to be elected.
const retryAfterSeconds = "5"

type writeHandlers struct {
	cfg     Config
	pub     publisher
	notif   notificationReserver
	log     *zap.Logger
	seed    *telemetry.SeedMetrics
	now     func() time.Time
	headers []kafka.Header
	access  *access
	signer  principalSigner
}

func newWriteHandlers(cfg Config, deps Deps, a *access) *writeHandlers {
	return &writeHandlers{
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
}

// AuditEventResponse is the 201 answer to a single event.
type AuditEventResponse struct {
	EventID        uuid.UUID `json:"event_id"`
	EventTimestamp time.Time `json:"event_timestamp"`
	Message        string    `json:"message"`
}

// BatchAuditEventResponse is the 201 answer to a batch.
type BatchAuditEventResponse struct {
	EventIDs []uuid.UUID `json:"event_ids"`
	Message  string      `json:"message"`
}

// AcceptedResponse is the 202 answer to a notification whose duplicate
// check could not run.
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
	if !w.publish(c, telemetry.SeedEvent, []kafka.Record{w.eventRecord(principalName(c), &ev)}, []uuid.UUID{ev.EventID}) {
		return
	}
	w.seed.Lag(telemetry.SeedEvent).Observe(lagSeconds(acceptedAt, ev.EventTimestamp))
	c.JSON(http.StatusCreated, AuditEventResponse{
		EventID:        ev.EventID,
		EventTimestamp: ev.EventTimestamp,
		Message:        "audit event accepted",
	})
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
	records := make([]kafka.Record, len(events))
	ids := make([]uuid.UUID, len(events))
	principal := principalName(c)
	for i := range events {
		if events[i].EventID == uuid.Nil {
			events[i].EventID = audit.NewEventID()
		}
		ids[i] = events[i].EventID
		records[i] = w.eventRecord(principal, &events[i])
	}
	if !w.publish(c, telemetry.SeedEvent, records, ids) {
		return
	}
	lag := w.seed.Lag(telemetry.SeedEvent)
	for i := range events {
		lag.Observe(lagSeconds(acceptedAt, events[i].EventTimestamp))
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

	checkCtx, cancel := context.WithTimeout(c.Request.Context(), w.cfg.DuplicateCheckTimeout)
	exists, id, checkErr := w.notif.ReserveNotification(checkCtx, n.NotificationID)
	cancel()
	if checkErr == nil && exists {
		w.seed.Failed(telemetry.SeedNotification, 1)
		abortProblem(c, probDuplicate, fmt.Sprintf("A notification audit record with notification_id %q is already stored.", n.NotificationID))
		return
	}
	// Identity and timestamps belong to the service, whatever the client sent.
	// Without the check there is no id to hand out: the writer takes one from
	// the same sequence when it stores the record.
	n.ID = 0
	if checkErr == nil {
		n.ID = id
	}
	n.CreatedAt = acceptedAt.UTC().Truncate(time.Microsecond)
	n.UpdatedAt = n.CreatedAt

	value := n.AppendJSON(nil)
	rec := kafka.Record{Topic: w.cfg.NotificationsTopic, Key: []byte(n.NotificationID), Value: value,
		Headers: w.recordHeaders(principalName(c), n.NotificationID, value)}
	if !w.publish(c, telemetry.SeedNotification, []kafka.Record{rec}, nil) {
		return
	}
	w.seed.Lag(telemetry.SeedNotification).Observe(lagSeconds(acceptedAt, n.SentAt))
	if checkErr != nil {
		w.log.Warn("notification accepted without duplicate check",
			zap.String("request_id", c.GetString(requestIDKey)),
			zap.String("notification_id", n.NotificationID), zap.Error(checkErr))
		w.seed.AcceptedWithoutDuplicateCheck(telemetry.SeedNotification)
		c.JSON(http.StatusAccepted, AcceptedResponse{
			Status:  "accepted",
			Message: "Notification audit record published; the duplicate check was unavailable, so the writer de-duplicates it on notification_id.",
		})
		return
	}
	c.JSON(http.StatusCreated, n)
}

// eventRecord is the Kafka record of an event: its canonical JSON, written
// directly (json.Marshal would re-scan and compact it, a measurable share of
// a request), keyed by correlation_id, with principal signed on it.
func (w *writeHandlers) eventRecord(principal string, ev *audit.Event) kafka.Record {
	value := ev.AppendJSON(nil)
	return kafka.Record{Topic: w.cfg.EventsTopic, Key: []byte(ev.CorrelationID), Value: value,
		Headers: w.recordHeaders(principal, ev.EventID.String(), value)}
}

// publish sends the records and answers 503 when Kafka did not take all of
// them. The event ids travel with the 503 so that a retry carrying them is
// idempotent even if some records did land.
func (w *writeHandlers) publish(c *gin.Context, kind telemetry.SeedRecord, records []kafka.Record, ids []uuid.UUID) bool {
	start := time.Now()
	err := w.pub.Publish(c.Request.Context(), records)
	if err == nil {
		w.seed.Written(kind, len(records), time.Since(start))
		return true
	}
	w.seed.Failed(kind, len(records))
	_ = c.Error(err)
	detail := "Kafka did not acknowledge the records; nothing was accepted. Retry later."
	var perr *kafka.PublishError
	if errors.As(err, &perr) {
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
	abortProblem(c, probKafka, detail, withEventIDs(ids))
	return false
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

// readJSONBody enforces the content type (415) and the body limit (413) and
// returns the body; on failure it has already answered.
func readJSONBody(c *gin.Context, limit int64) ([]byte, bool) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			abortProblem(c, probMediaType, fmt.Sprintf("Content-Type %q is not supported; send application/json.", ct))
			return nil, false
		}
	}
	if c.Request.ContentLength > limit {
		abortProblem(c, probTooLarge, fmt.Sprintf("The body is %d bytes; the limit is %d.", c.Request.ContentLength, limit))
		return nil, false
	}
	size := c.Request.ContentLength
	if size < 0 || size > 64<<10 {
		size = 64 << 10 // grow past a hint we cannot trust
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	_, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
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
