package writer_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/provenance"
)

// kgoHeaders converts headers for a franz-go record.
func kgoHeaders(hs []kafka.Header) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = kgo.RecordHeader{Key: string(h.Key), Value: h.Value}
	}
	return out
}

// kcatHeaders turns headers into kcat -H arguments.
func kcatHeaders(hs []kafka.Header) []string {
	var args []string
	for _, h := range hs {
		args = append(args, "-H", string(h.Key)+"="+string(h.Value))
	}
	return args
}

// TestSubmittedByFromAnIndependentProducer: records kcat produces are
// stored with submitted_by kafka:unknown without a principal header, and
// kafka:<claimed> with one the writer cannot verify: unsigned, forged, or
// signed for another record (copied). A header signed the way the API
// signs, for exactly that record, is believed whoever sends it: the
// signature, not the client, is the proof.
func TestSubmittedByFromAnIndependentProducer(t *testing.T) {
	t.Parallel()
	tp := topics{events: "audit.events", notifications: "audit.notifications", dlq: "audit.dlq", group: "auditstream-writer"}
	brokers, _ := kcatKafka(t, map[string]int32{tp.events: 1, tp.notifications: 1, tp.dlq: 1})
	key, err := keyring.NewKey("source-1")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(key), "")
	require.NoError(t, err)
	keys := provenance.New(ring)
	r := startWriter(t, tp, rigOptions{brokers: brokers, submitters: keys})
	p := prefix(t)

	line := func(e audit.Event) string { return e.CorrelationID + "|" + string(e.AppendJSON(nil)) }
	event := func(name string) audit.Event { return fullEvent(p + name) }
	signed := func(e audit.Event) []kafka.Header {
		return keys.AppendHeaders(nil, "svc-gateway", e.EventID.String(), e.AppendJSON(nil))
	}
	other := event("other")
	tests := []struct {
		name    string
		event   audit.Event
		headers func(e audit.Event) []kafka.Header
		want    string
	}{
		{"no header", event("none"), func(audit.Event) []kafka.Header { return nil }, "kafka:unknown"},
		{"unsigned claim", event("claim"), func(audit.Event) []kafka.Header {
			return []kafka.Header{{Key: []byte(kafka.HeaderPrincipal), Value: []byte("svc-gateway")}}
		}, "kafka:svc-gateway"},
		{"forged signature", event("forged"), func(audit.Event) []kafka.Header {
			return []kafka.Header{{Key: []byte(kafka.HeaderPrincipal), Value: []byte("svc-gateway")},
				{Key: []byte(kafka.HeaderPrincipalSig), Value: []byte("source-1:c2lnbmVkIGJ5IG5vYm9keQ==")}}
		}, "kafka:svc-gateway"},
		{"copied from another record", event("copied"), func(audit.Event) []kafka.Header { return signed(other) }, "kafka:svc-gateway"},
		{"signed for this record", event("signed"), signed, "svc-gateway"},
	}
	for _, tt := range tests {
		kcatProduce(t, brokers, tp.events, "", []string{line(tt.event)}, kcatHeaders(tt.headers(tt.event))...)
	}

	n := audit.Notification{RemediationID: "rem-1", NotificationID: p + "n-signed", Recipient: "oncall@example.com",
		Channel: "email", MessageSummary: "disk full", Status: "sent", SentAt: time.Now().UTC().Truncate(time.Microsecond)}
	copied := n
	copied.NotificationID = p + "n-copied"
	nValue := n.AppendJSON(nil)
	nHeaders := keys.AppendHeaders(nil, "svc-notifier", n.NotificationID, nValue)
	kcatProduce(t, brokers, tp.notifications, "", []string{n.NotificationID + "|" + string(nValue)}, kcatHeaders(nHeaders)...)
	kcatProduce(t, brokers, tp.notifications, "", []string{copied.NotificationID + "|" + string(copied.AppendJSON(nil))},
		kcatHeaders(nHeaders)...)

	eventually(t, 20*time.Second, func() bool { return countEvents(t, p) == len(tests) && countNotifications(t, p) == 2 },
		"every record stored; have %d events", func() int { return countEvents(t, p) })
	for _, tt := range tests {
		require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND submitted_by = $2`,
			tt.event.EventID, tt.want), tt.name)
	}
	require.Equal(t, 1, count(t, `SELECT count(*) FROM notification_audit WHERE notification_id = $1 AND submitted_by = 'svc-notifier'`,
		n.NotificationID), "a notification signed for its notification_id")
	require.Equal(t, 1, count(t, `SELECT count(*) FROM notification_audit WHERE notification_id = $1 AND submitted_by = 'kafka:svc-notifier'`,
		copied.NotificationID), "a notification with another's header")

	require.Equal(t, 2.0, r.metric("auditstream_writer_submitters_total", "result", "verified"))
	require.Equal(t, 4.0, r.metric("auditstream_writer_submitters_total", "result", "unverified"))
	require.Equal(t, 1.0, r.metric("auditstream_writer_submitters_total", "result", "unknown"))
}

// TestSubmittedByWithoutKeys: with signing disabled nothing verifies, not
// even a record the API signed, and a record without event_id, which the
// API never publishes, never verifies either.
func TestSubmittedByWithoutKeys(t *testing.T) {
	t.Parallel()
	tp := newTopics(t)
	key, err := keyring.NewKey("source-1")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(key), "")
	require.NoError(t, err)
	keys := provenance.New(ring)
	startWriter(t, tp, rigOptions{})
	withKeys := newTopics(t)
	startWriter(t, withKeys, rigOptions{submitters: keys})
	p := prefix(t)

	signed := fullEvent(p + "signed")
	rec := eventRecord(tp.events, signed)
	rec.Headers = append(rec.Headers, kgoHeaders(keys.AppendHeaders(nil, "svc-gateway", signed.EventID.String(), rec.Value))...)
	noID := minimalEvent(p + "no-id")
	noIDRec := eventRecord(withKeys.events, noID)
	// Signed without an id, as the API never signs.
	noIDRec.Headers = append(noIDRec.Headers, kgoHeaders(keys.AppendHeaders(nil, "svc-gateway", "", noIDRec.Value))...)
	produce(t, rec, noIDRec)

	eventually(t, 15*time.Second, func() bool { return countEvents(t, p) == 2 }, "both stored")
	require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND submitted_by = 'kafka:svc-gateway'`,
		signed.EventID), "signing disabled: unverified")
	require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE correlation_id = $1 AND submitted_by = 'kafka:svc-gateway'
		AND event_id <> $2`, noID.CorrelationID, uuid.Nil), "no event_id: unverified")
}
