// Package selfaudit records what auditstream itself does to the audit
// trail (SPEC 10) as audit events of the reserved category auditstream:
// the writer's retention drops and the partitions kept by legal holds, the
// API's placing and releasing of holds. Such an event goes through the
// normal pipeline, published to the events topic like any other, under the
// principal system:auditstream signed with the source key, so the writer
// stores it with that principal as submitted_by; a record of that category
// from anyone else is refused (API 400, writer dead letter).
//
// Each kind of action has a chain of its own (its correlation_id), so the
// system's record of, say, every retention drop can be verified as one
// sequence, apart from the clients' chains.
package selfaudit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
)

// Chains of the system's events (their correlation_id).
const (
	RetentionChain = "auditstream:retention"
	LegalHoldChain = "auditstream:legal-hold"
)

// Event types and actions.
const (
	TypePartitionDropped = "auditstream.retention.partition_dropped"
	TypePartitionHeld    = "auditstream.retention.partition_held"
	TypeHoldPlaced       = "auditstream.legal_hold.placed"
	TypeHoldReleased     = "auditstream.legal_hold.released"
)

// Action is one thing auditstream did, to be recorded.
type Action struct {
	// ID is the event_id; zero assigns a new one. A drop passes the id its
	// bookkeeping keeps, so that publishing it again stays one event.
	ID uuid.UUID
	// At is when it happened; zero means now.
	At     time.Time
	Type   string // event_type, one of the Type constants
	Action string // event_action: drop, hold, place, release
	Chain  string // correlation_id, one of the Chain constants
	// Actor is who asked for it (the principal placing a hold); empty for
	// what the system does on its own (actor "auditstream", a service).
	Actor        string
	ResourceType string
	ResourceID   string
	// Data is event_data: anything encoding/json renders as an object.
	Data any
}

// maxActor is actor_id's column size.
const maxActor = 255

// signer puts the principal's signed name on a record (internal/provenance).
type signer interface {
	AppendHeaders(hs []kafka.Header, principal, id string, value []byte) []kafka.Header
}

// Recorder publishes Actions as audit events, through watermill's
// publisher as the API publishes every record (kafka.Publisher, which
// returns once Kafka has acknowledged every message).
type Recorder struct {
	pub    message.Publisher
	signer signer
	topic  string
	source string
	rules  audit.Rules
	now    func() time.Time
}

// New returns a Recorder publishing to topic (the events topic) through
// pub, signing with signer; source is the auditstream-source header, the
// binary's name.
func New(pub message.Publisher, signer signer, topic, source string) *Recorder {
	rules := audit.DefaultRules()
	rules.AcceptSystemCategory = true
	return &Recorder{pub: pub, signer: signer, topic: topic, source: source, rules: rules, now: time.Now}
}

// Record publishes the actions, all or none acknowledged (an error).
func (r *Recorder) Record(ctx context.Context, actions ...Action) error {
	msgs := make([]*message.Message, 0, len(actions))
	for _, a := range actions {
		msg, err := r.message(a)
		if err != nil {
			return err
		}
		msg.SetContext(ctx)
		msgs = append(msgs, msg)
	}
	if err := r.pub.Publish(r.topic, msgs...); err != nil {
		return fmt.Errorf("record auditstream events: %w", err)
	}
	return nil
}

// message builds the Kafka record of a, checked by the parser the writer
// runs, so the system never dead-letters its own event.
func (r *Recorder) message(a Action) (*message.Message, error) {
	ev, err := r.event(a)
	if err != nil {
		return nil, err
	}
	id, value := ev.EventID.String(), ev.AppendJSON(nil)
	if _, err := r.rules.ParseEvent(value, r.now()); err != nil {
		return nil, fmt.Errorf("auditstream event %s: %w", a.Type, err)
	}
	hs := []kafka.Header{
		{Key: []byte(kafka.HeaderContentType), Value: []byte("application/json")},
		{Key: []byte(kafka.HeaderSource), Value: []byte(r.source)},
	}
	return kafka.NewMessage(id, []byte(ev.CorrelationID), value, r.signer.AppendHeaders(hs, audit.SystemPrincipal, id, value)), nil
}

func (r *Recorder) event(a Action) (audit.Event, error) {
	if a.Type == "" || a.Action == "" || a.Chain == "" {
		return audit.Event{}, errors.New("auditstream event: type, action and chain are required")
	}
	data, err := json.Marshal(a.Data)
	if err != nil {
		return audit.Event{}, fmt.Errorf("auditstream event %s: %w", a.Type, err)
	}
	if a.Data == nil {
		data = []byte("{}")
	}
	ev := audit.Event{
		EventID:        a.ID,
		Version:        "1.0",
		EventType:      a.Type,
		EventTimestamp: a.At,
		EventCategory:  audit.SystemCategory,
		EventAction:    a.Action,
		EventOutcome:   "success",
		CorrelationID:  a.Chain,
		EventData:      data,
	}
	if ev.EventID == uuid.Nil {
		ev.EventID = audit.NewEventID()
	}
	if ev.EventTimestamp.IsZero() {
		ev.EventTimestamp = r.now()
	}
	ev.EventTimestamp = ev.EventTimestamp.UTC().Truncate(time.Microsecond)
	actorType, actor := "service", "auditstream"
	if a.Actor != "" {
		actorType, actor = "principal", a.Actor
	}
	ev.ActorType = &actorType
	// A principal's name may be longer than the column; event_data carries
	// it in full (the caller puts it there).
	if utf8.RuneCountInString(actor) <= maxActor {
		ev.ActorID = &actor
	}
	if a.ResourceType != "" {
		ev.ResourceType = &a.ResourceType
	}
	if a.ResourceID != "" {
		ev.ResourceID = &a.ResourceID
	}
	return ev, nil
}
