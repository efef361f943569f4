package writer

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/kafka"
)

// item is one consumed record, decoded: exactly one of event, notification
// or poison is set.
type item struct {
	msg          *kafka.Message
	event        *audit.Event
	notification *audit.Notification
	// poison is why the record can never be stored as it is.
	poison string
}

// decode validates a record with the API's rules. The acceptance time for
// the future-timestamp rule is the Kafka record time (SPEC 2.2).
func (w *Writer) decode(msg *kafka.Message) item {
	it := item{msg: msg}
	acceptedAt := msg.Timestamp
	if acceptedAt.IsZero() || acceptedAt.Unix() <= 0 {
		acceptedAt = w.now()
	}
	switch msg.Topic {
	case w.cfg.EventsTopic:
		ev, err := w.cfg.Rules.ParseEvent(msg.Value, acceptedAt)
		if err != nil {
			it.poison = reason("invalid audit event", err)
			return it
		}
		ev.SubmittedBy = w.submittedBy(msg, signedID(ev.EventID))
		if ev.EventCategory == audit.SystemCategory && !w.cfg.Submitters.FromSystem(*ev.SubmittedBy) {
			it.poison = fmt.Sprintf("invalid audit event: event_category: %s is reserved for auditstream's own events, "+
				"and this one was submitted by %s", audit.SystemCategory, *ev.SubmittedBy)
			return it
		}
		if ev.EventID == [16]byte{} {
			ev.EventID = deterministicID(msg)
		}
		it.event = &ev
	case w.cfg.NotificationsTopic:
		n, err := w.cfg.Rules.ParseNotification(msg.Value, acceptedAt)
		if err != nil {
			it.poison = reason("invalid notification audit record", err)
			return it
		}
		n.SubmittedBy = w.submittedBy(msg, n.NotificationID)
		it.notification = &n
	default:
		it.poison = fmt.Sprintf("record from unexpected topic %q", msg.Topic)
	}
	return it
}

// deterministicID is the id of an event record without event_id, derived
// from where the record was first produced and from the record itself, so
// that every redelivery and every replay of it gets the same id and a new
// record at a reused offset (its topic created again) a new one.
func deterministicID(msg *kafka.Message) uuid.UUID {
	o := dlq.OriginOf(msg)
	if o.CoordinatesOnly {
		return audit.DeterministicEventID(o.Topic, o.Partition, o.Offset)
	}
	return audit.DeterministicEventIDV2(audit.RecordOrigin{Topic: o.Topic, TopicID: o.TopicID, Partition: o.Partition,
		Offset: o.Offset, Timestamp: o.Timestamp, Key: msg.Key, Value: msg.Value})
}

// reason renders a validation error for the dlq-error header: every field
// error, so an SRE sees all of them without decoding the record.
func reason(what string, err error) string {
	var fe audit.FieldErrors
	if errors.As(err, &fe) {
		return fmt.Sprintf("%s: %s", what, fe.Error())
	}
	return fmt.Sprintf("%s: %v", what, err)
}
