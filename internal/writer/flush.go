package writer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/backoff"
	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// errAbandoned means a flush gave up because its session ended (rebalance
// or shutdown) while the database or Kafka was unavailable: nothing of the
// batch is marked, so it is redelivered.
var errAbandoned = errors.New("batch abandoned")

// deadLetter is a record bound for the DLQ.
type deadLetter struct {
	msg    *kafka.Message
	class  errclass.Class
	reason string
}

// flush stores a batch, dead-letters its bad records and marks the offsets.
// final is the last flush of a session: one attempt, no waiting out an
// outage. It reports whether the batch was handled.
func (w *Writer) flush(sess session, batch []item, final bool) bool {
	start := time.Now()
	// A batch is a trace of its own, linked to the traces its records
	// came with (the requests that published them).
	ctx, span := w.tracer.Start(context.Background(), "writer batch", trace.WithNewRoot(),
		trace.WithLinks(w.recordLinks(batch)...),
		trace.WithAttributes(attribute.Int("auditstream.batch.records", len(batch)), attribute.Bool("auditstream.batch.final", final)))
	defer span.End()
	ok := w.handle(ctx, sess, batch, final)
	result := "ok"
	if !ok {
		result = "abandoned"
		span.SetStatus(codes.Error, "batch abandoned; its records will be redelivered")
	}
	w.metrics.flush.WithLabelValues(result).Observe(time.Since(start).Seconds())
	w.metrics.batchSize.Observe(float64(len(batch)))
	if ce := w.log.Check(zap.DebugLevel, "batch flushed"); ce != nil {
		ce.Write(zap.Int("records", len(batch)), zap.String("result", result), zap.Duration("duration", time.Since(start)), telemetry.TraceID(ctx))
	}
	return ok
}

// maxBatchLinks bounds the links of a batch span, one per distinct trace
// among its records: the SDK's default link limit, so that none is
// dropped unseen.
const maxBatchLinks = 128

// recordLinks returns a link to the trace of each record that carries a
// traceparent header, one per trace, at most maxBatchLinks.
func (w *Writer) recordLinks(batch []item) []trace.Link {
	if w.propagator == nil {
		return nil
	}
	var links []trace.Link
	seen := make(map[trace.TraceID]struct{})
	for _, it := range batch {
		hs := kafka.HeaderCarrier(it.msg.Headers)
		sc := trace.SpanContextFromContext(w.propagator.Extract(context.Background(), &hs))
		if !sc.IsValid() {
			continue
		}
		if _, ok := seen[sc.TraceID()]; ok {
			continue
		}
		seen[sc.TraceID()] = struct{}{}
		links = append(links, trace.Link{SpanContext: sc})
		if len(links) == maxBatchLinks {
			break
		}
	}
	return links
}

func (w *Writer) handle(ctx context.Context, sess session, batch []item, final bool) bool {
	var dead []deadLetter
	rows := make([]item, 0, len(batch))
	for _, it := range batch {
		if it.poison != "" {
			dead = append(dead, deadLetter{msg: it.msg, class: errclass.Poison, reason: it.poison})
			continue
		}
		rows = append(rows, it)
	}
	isolated, err := w.storeIsolating(ctx, sess, rows, final)
	if err != nil {
		w.log.Warn("batch abandoned; its records will be redelivered", zap.Int("records", len(batch)), telemetry.TraceID(ctx), zap.Error(err))
		return false
	}
	dead = append(dead, isolated...)
	if err := w.deadLetter(ctx, sess, dead, final); err != nil {
		w.log.Warn("dead letters not acknowledged; batch will be redelivered", zap.Int("records", len(batch)), telemetry.TraceID(ctx), zap.Error(err))
		return false
	}
	markLast(sess, batch)
	return true
}

// markLast marks, per partition, the last record of the batch; a batch
// holds each partition's records in offset order.
func markLast(sess session, batch []item) {
	type tp struct {
		topic     string
		partition int32
	}
	last := make(map[tp]*kafka.Message)
	for _, it := range batch {
		last[tp{it.msg.Topic, it.msg.Partition}] = it.msg
	}
	for _, msg := range last {
		sess.MarkMessage(msg)
	}
}

// storeIsolating writes rows, waiting out outages; on a poison or failed
// error it splits the rows in halves until each culprit is alone, and
// returns the culprits as dead letters while everything else is stored.
func (w *Writer) storeIsolating(ctx context.Context, sess session, rows []item, final bool) ([]deadLetter, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	conflicts, err := w.write(ctx, sess, rows, final)
	if err == nil || errors.Is(err, errAbandoned) {
		return conflicts, err
	}
	if len(rows) == 1 {
		class := errclass.Of(err)
		w.log.Warn("record refused by the database",
			zap.String("topic", rows[0].msg.Topic), zap.Int32("partition", rows[0].msg.Partition),
			zap.Int64("offset", rows[0].msg.Offset), zap.String("class", string(class)), telemetry.TraceID(ctx), zap.Error(err))
		return []deadLetter{{msg: rows[0].msg, class: class, reason: err.Error()}}, nil
	}
	mid := len(rows) / 2
	left, err := w.storeIsolating(ctx, sess, rows[:mid], final)
	if err != nil {
		return nil, err
	}
	right, err := w.storeIsolating(ctx, sess, rows[mid:], final)
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// write runs one transaction for rows, retrying through outages with
// capped exponential backoff (fetching paused meanwhile). It returns the
// records refused as conflicts (their event_id is stored with other
// content), or errAbandoned, or the poison/failed error of the batch. Each
// attempt is a "store write" span of the batch's trace.
func (w *Writer) write(ctx context.Context, sess session, rows []item, final bool) ([]deadLetter, error) {
	events := make([]audit.Event, 0, len(rows))
	// eventRows maps an event's index in events to its record in rows.
	eventRows := make([]int, 0, len(rows))
	var notifications []audit.Notification
	for i, it := range rows {
		if it.event != nil {
			events = append(events, *it.event)
			eventRows = append(eventRows, i)
		} else {
			notifications = append(notifications, *it.notification)
		}
	}
	retry := backoff.Writer(w.cfg.MaxBackoff).New()
	for {
		start := time.Now()
		// The attempt is not bound to the session: a transaction under way
		// finishes even if a rebalance starts, bounded by WriteTimeout.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(sess.Context()), w.cfg.WriteTimeout)
		wctx, span := w.tracer.Start(trace.ContextWithSpan(wctx, trace.SpanFromContext(ctx)), "store write",
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.operation.name", "COPY"),
				attribute.Int("auditstream.events", len(events)), attribute.Int("auditstream.notifications", len(notifications))))
		res, err := w.rows.Write(wctx, events, notifications)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(attribute.String("auditstream.error_class", string(errclass.Of(err))))
		}
		span.End()
		cancel()
		if err == nil {
			w.setOutage(false, nil)
			w.recordWrite(res, rows, time.Since(start))
			return conflictLetters(res.EventConflicts, rows, eventRows), nil
		}
		if errclass.Of(err) != errclass.Outage {
			w.setOutage(false, nil)
			return nil, err
		}
		if final {
			return nil, fmt.Errorf("%w: %w", errAbandoned, err)
		}
		w.setOutage(true, err)
		if !retry.Wait(sess.Context()) {
			return nil, fmt.Errorf("%w: %w", errAbandoned, err)
		}
	}
}

// conflictLetters turns the store's conflicts into dead letters whose
// reason gives an SRE what to compare: the id and both digests.
func conflictLetters(conflicts []store.Conflict, rows []item, eventRows []int) []deadLetter {
	if len(conflicts) == 0 {
		return nil
	}
	dead := make([]deadLetter, len(conflicts))
	for i, c := range conflicts {
		holder := "is stored"
		if c.InBatch {
			holder = "was just stored from an earlier record of the same batch"
		}
		dead[i] = deadLetter{msg: rows[eventRows[c.Index]].msg, class: errclass.Conflict, reason: fmt.Sprintf(
			"event_id %s %s with other content (content_sha256 stored %x, this record %x): a reused event_id; the stored event is kept as it is",
			c.EventID, holder, c.Stored, c.Got)}
	}
	return dead
}

func (w *Writer) recordWrite(res store.WriteResult, rows []item, took time.Duration) {
	m := w.metrics
	m.rows.WithLabelValues("audit_events").Add(float64(res.Events))
	m.rows.WithLabelValues("notification_audit").Add(float64(res.Notifications))
	m.duplicates.WithLabelValues("audit_events").Add(float64(res.EventDuplicates))
	m.duplicates.WithLabelValues("notification_audit").Add(float64(res.NotificationDuplicates))
	m.unverifiedDuplicates.Add(float64(res.EventDuplicatesUnverified))
	if res.ChainHeads > 0 {
		m.chainHeads.Observe(float64(res.ChainHeads))
	}
	m.chainRaces.Add(float64(res.ChainRaces))
	if res.Events+res.EventDuplicates > 0 {
		m.seed.Written(telemetry.SeedEvent, res.Events, took)
	}
	if res.Notifications+res.NotificationDuplicates > 0 {
		m.seed.Written(telemetry.SeedNotification, res.Notifications, took)
	}
	// Looked up once per batch, not once per row: this runs for every
	// record the writer stores.
	eventLag, notificationLag := m.seed.Lag(telemetry.SeedEvent), m.seed.Lag(telemetry.SeedNotification)
	now := w.now()
	for _, it := range rows {
		if it.msg.Timestamp.IsZero() {
			continue
		}
		lag := eventLag
		if it.notification != nil {
			lag = notificationLag
		}
		lag.Observe(max(now.Sub(it.msg.Timestamp).Seconds(), 0))
	}
}

// deadLetter publishes the dead letters and waits for Kafka's
// acknowledgement, retrying while the session lasts: their offsets must not
// be marked before the DLQ has them.
func (w *Writer) deadLetter(ctx context.Context, sess session, dead []deadLetter, final bool) error {
	if len(dead) == 0 {
		return nil
	}
	_, span := w.tracer.Start(ctx, "send "+w.cfg.DLQTopic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", w.cfg.DLQTopic),
			attribute.Int("messaging.batch.message_count", len(dead))))
	defer span.End()
	now := w.now().UTC()
	msgs := make([]*message.Message, len(dead))
	for i, d := range dead {
		letter := dlq.Failure(d.msg, d.class, d.reason, now)
		// The original key, value and headers byte for byte (SPEC 6.1):
		// the headers travel encoded, in order, never as watermill
		// metadata entries of their own.
		msgs[i] = kafka.NewMessage(d.msg.Coordinates(), d.msg.Key, d.msg.Value, letter.Headers(d.msg.Headers))
	}
	retry := backoff.Writer(w.cfg.MaxBackoff).New()
	for {
		err := w.dlq.Publish(w.cfg.DLQTopic, msgs...)
		if err == nil {
			break
		}
		span.AddEvent("publish failed", trace.WithAttributes(attribute.String("error", err.Error())))
		if final {
			span.SetStatus(codes.Error, err.Error())
			return fmt.Errorf("%w: %w", errAbandoned, err)
		}
		w.log.Warn("dead-letter publish failed, retrying", zap.Int("records", len(msgs)),
			zap.Duration("backoff", retry.Next()), telemetry.TraceID(ctx), zap.Error(err))
		if !retry.Wait(sess.Context()) {
			span.SetStatus(codes.Error, err.Error())
			return fmt.Errorf("%w: %w", errAbandoned, err)
		}
	}
	for _, d := range dead {
		w.metrics.deadLetters.WithLabelValues(string(d.class)).Inc()
		w.metrics.seed.Failed(serviceOf(d.msg.Topic, w.cfg.NotificationsTopic), 1)
		w.log.Warn("record dead-lettered", zap.String("topic", d.msg.Topic), zap.Int32("partition", d.msg.Partition),
			zap.Int64("offset", d.msg.Offset), zap.String("class", string(d.class)), zap.String("reason", dlq.Truncate(d.reason)),
			telemetry.TraceID(ctx))
	}
	return nil
}

func serviceOf(topic, notificationsTopic string) telemetry.SeedRecord {
	if topic == notificationsTopic {
		return telemetry.SeedNotification
	}
	return telemetry.SeedEvent
}
