package selfaudit

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/provenance"
)

// fakePublisher keeps the records of what it is given, as the Kafka
// publisher would send them.
type fakePublisher struct {
	t       *testing.T
	records []kafka.Record
	err     error
}

func (p *fakePublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		rec, err := kafka.RecordOf(topic, m)
		require.NoError(p.t, err)
		p.records = append(p.records, rec)
	}
	return p.err
}

func (p *fakePublisher) Close() error { return nil }

func sourceKeys(t *testing.T) *provenance.Keys {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, keyring.Generate(path, "k1"))
	keys, err := provenance.Load(path)
	require.NoError(t, err)
	return keys
}

// TestRecord: an action becomes an event of the reserved category, on the
// events topic under its chain's key, that the writer's rules accept and
// whose principal header the writer verifies as the system's.
func TestRecord(t *testing.T) {
	keys := sourceKeys(t)
	pub := &fakePublisher{t: t}
	r := New(pub, keys, "audit.events", "writer")
	at := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	id := uuid.New()
	require.NoError(t, r.Record(t.Context(), Action{
		ID: id, At: at, Type: TypePartitionDropped, Action: "drop", Chain: RetentionChain,
		ResourceType: "partition", ResourceID: "audit_events_p202201", Data: map[string]any{"events": 3},
	}, Action{Type: TypeHoldPlaced, Action: "place", Chain: LegalHoldChain, Actor: "legal-admin"}))
	require.Len(t, pub.records, 2)

	rec := pub.records[0]
	require.Equal(t, "audit.events", rec.Topic)
	require.Equal(t, RetentionChain, string(rec.Key))
	rules := audit.DefaultRules()
	rules.AcceptSystemCategory = true
	ev, err := rules.ParseEvent(rec.Value, time.Now())
	require.NoError(t, err)
	require.Equal(t, id, ev.EventID)
	require.Equal(t, at.Truncate(time.Microsecond), ev.EventTimestamp)
	require.Equal(t, audit.SystemCategory, ev.EventCategory)
	require.Equal(t, TypePartitionDropped, ev.EventType)
	require.Equal(t, "service", *ev.ActorType)
	require.Equal(t, "auditstream", *ev.ActorID)
	require.Equal(t, "audit_events_p202201", *ev.ResourceID)
	require.JSONEq(t, `{"events":3}`, string(ev.EventData))
	submittedBy := keys.SubmittedBy(rec.Headers, ev.EventID.String(), rec.Value)
	require.Equal(t, audit.SystemPrincipal, submittedBy)
	require.True(t, keys.FromSystem(submittedBy))

	placed, err := rules.ParseEvent(pub.records[1].Value, time.Now())
	require.NoError(t, err)
	require.NotEqual(t, uuid.Nil, placed.EventID, "a new id")
	require.Equal(t, "principal", *placed.ActorType)
	require.Equal(t, "legal-admin", *placed.ActorID)
	require.JSONEq(t, `{}`, string(placed.EventData))

	// Clients' rules refuse the category.
	_, err = audit.DefaultRules().ParseEvent(rec.Value, time.Now())
	require.ErrorContains(t, err, "reserved")
}

// TestRecordLongActor: a principal longer than actor_id's column is left
// out of it (the caller puts it in event_data), not cut.
func TestRecordLongActor(t *testing.T) {
	pub := &fakePublisher{t: t}
	r := New(pub, (*provenance.Keys)(nil), "audit.events", "ingest-api")
	require.NoError(t, r.Record(t.Context(), Action{Type: TypeHoldPlaced, Action: "place", Chain: LegalHoldChain,
		Actor: strings.Repeat("a", 300)}))
	rules := audit.DefaultRules()
	rules.AcceptSystemCategory = true
	ev, err := rules.ParseEvent(pub.records[0].Value, time.Now())
	require.NoError(t, err)
	require.Nil(t, ev.ActorID)
}

func TestRecordErrors(t *testing.T) {
	pub := &fakePublisher{t: t, err: errors.New("kafka down")}
	r := New(pub, (*provenance.Keys)(nil), "audit.events", "writer")
	require.ErrorContains(t, r.Record(t.Context(), Action{Type: TypeHoldPlaced, Action: "place", Chain: LegalHoldChain}), "kafka down")
	require.ErrorContains(t, r.Record(t.Context(), Action{Type: TypeHoldPlaced}), "required")
	require.Error(t, r.Record(t.Context(), Action{Type: TypeHoldPlaced, Action: "place", Chain: LegalHoldChain, Data: make(chan int)}))
	require.ErrorContains(t, r.Record(t.Context(), Action{Type: strings.Repeat("t", 101), Action: "place", Chain: LegalHoldChain}),
		"event_type", "an event the writer would dead-letter is never published")
}
