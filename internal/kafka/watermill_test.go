package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/testenv"
)

func TestMessageCarriesTheRecordByteForByte(t *testing.T) {
	tests := []struct {
		name    string
		key     []byte
		headers []Header
	}{
		{name: "no key, no headers"},
		{name: "empty key is not a missing key", key: []byte{}},
		{name: "the API's headers", key: []byte("rr-2025-001"), headers: []Header{
			{Key: []byte(HeaderContentType), Value: []byte("application/json")},
			{Key: []byte(HeaderSource), Value: []byte("ingest-api")},
		}},
		{name: "order, repeated keys, null and empty values, binary bytes", key: []byte{0, 0xff}, headers: []Header{
			{Key: []byte("z"), Value: []byte("1")},
			{Key: []byte("a"), Value: nil},
			{Key: []byte("z"), Value: []byte{}},
			{Key: []byte{}, Value: []byte{0xc3, 0x28, 0}},
			{Key: nil, Value: []byte("null key")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value := []byte(`{"a":1}`)
			msg := NewMessage("id-1", tt.key, value, tt.headers)
			require.Equal(t, "id-1", msg.UUID)
			r, err := RecordOf("t", msg)
			require.NoError(t, err)
			require.Equal(t, "t", r.Topic)
			require.Equal(t, tt.key, r.Key)
			require.Equal(t, tt.key == nil, r.Key == nil, "a null key stays null, an empty one empty")
			require.Same(t, &value[0], &r.Value[0], "the value is the payload, not a copy")
			require.Equal(t, tt.headers, r.Headers)
			for i, h := range tt.headers {
				require.Equal(t, h.Value == nil, r.Headers[i].Value == nil, "header %d: null and empty values differ", i)
				require.Equal(t, h.Key == nil, r.Headers[i].Key == nil, "header %d: null and empty keys differ", i)
			}
		})
	}
}

func TestRecordOfRefusesWhatIsNotARecord(t *testing.T) {
	plain := message.NewMessage("plain", []byte("x"))
	plain.Metadata.Set("handler_name", "h")
	_, err := RecordOf("t", plain)
	require.ErrorContains(t, err, `metadata ["handler_name"] has no place in a Kafka record`)

	for name, encoded := range map[string]string{
		"bad varint":       "\x7f",
		"truncated":        encodeRecord([]byte("k"), []Header{{Key: []byte("k"), Value: []byte("value")}})[:6],
		"trailing bytes":   encodeRecord(nil, nil) + "x",
		"too many headers": encodeRecord(nil, nil)[:1] + "\x05",
	} {
		msg := NewMessage(name, nil, nil, nil)
		msg.Metadata[metadataRecord] = encoded
		_, err := RecordOf("t", msg)
		require.ErrorIs(t, err, errBadRecord, name)
		_, err = producerMessage("t", msg)
		require.ErrorIs(t, err, errBadRecord, name)
	}
}

func TestProducerMessageIsTheRecord(t *testing.T) {
	headers := []Header{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("a"), Value: nil}}
	msg := NewMessage("1", []byte("k"), []byte("v"), headers)
	pm, err := producerMessage("t", msg)
	require.NoError(t, err)
	require.Equal(t, "t", pm.Topic)
	require.Equal(t, sarama.ByteEncoder("k"), pm.Key)
	require.Equal(t, sarama.ByteEncoder("v"), pm.Value)
	require.Equal(t, []sarama.RecordHeader{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("a"), Value: nil}}, pm.Headers)

	bare, err := producerMessage("t", NewMessage("2", nil, []byte("v"), nil))
	require.NoError(t, err)
	require.Nil(t, bare.Key, "no key: sarama sends a null key")
	require.Nil(t, bare.Headers)
}

// TestPublisherSendsACallTogether: the messages of one Publish reach the
// topic with their keys and headers exactly, in one acknowledged send, and
// a publisher that cannot reach Kafka answers with the Producer's
// PublishError.
func TestPublisherSendsACallTogether(t *testing.T) {
	k := testenv.NewKafka(t, map[string]int32{"w": 1})
	reg := prometheus.NewRegistry()
	p, err := NewProducer(Config{Brokers: k.Brokers(), Version: "3.6.0", ClientID: "t", PublishTimeout: 3 * time.Second}, nil, zap.NewNop(), reg)
	require.NoError(t, err)
	pub := NewPublisher(p)
	t.Cleanup(func() { require.NoError(t, pub.Close()) })

	hs := []Header{
		{Key: []byte(HeaderContentType), Value: []byte("application/json")},
		{Key: []byte(HeaderSource), Value: []byte("ingest-api")},
		{Key: []byte(HeaderContentType), Value: nil},
	}
	msgs := []*message.Message{
		NewMessage("1", []byte("k1"), []byte("v1"), hs),
		NewMessage("2", nil, []byte("v2"), hs),
		NewMessage("3", []byte("k1"), []byte("v3"), nil),
	}
	err = pub.Publish("w", msgs...)
	var perr *PublishError
	require.ErrorAs(t, err, &perr, "not connected yet")
	require.ErrorIs(t, err, ErrUnavailable)
	require.Equal(t, 3, perr.Failed)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Connect(ctx))
	require.NoError(t, pub.Publish("w", msgs...))
	require.Equal(t, uint64(1), publishCalls(t, reg), "one send for the three messages")

	recs, err := testenv.ConsumeAll(ctx, k.Brokers(), "w", 3)
	require.NoError(t, err)
	wantHeaders := []kgo.RecordHeader{
		{Key: HeaderContentType, Value: []byte("application/json")},
		{Key: HeaderSource, Value: []byte("ingest-api")},
		{Key: HeaderContentType, Value: nil},
	}
	require.Equal(t, []byte("k1"), recs[0].Key)
	require.Nil(t, recs[1].Key, "a message without key is a record without key")
	for i, r := range recs {
		require.Equal(t, msgs[i].Payload, message.Payload(r.Value))
	}
	require.Equal(t, wantHeaders, recs[0].Headers)
	require.Equal(t, wantHeaders, recs[1].Headers)
	require.Empty(t, recs[2].Headers, "no _watermill_message_uuid or other header of watermill's")

	// A message whose metadata is not a record's fails the call before
	// anything is sent: it is not a Kafka outage.
	plain := message.NewMessage("plain", []byte("v"))
	plain.Metadata.Set("correlation_id", "c")
	err = pub.Publish("w", NewMessage("ok", nil, []byte("v"), nil), plain)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrUnavailable)
	require.Equal(t, uint64(1), publishCalls(t, reg))
	require.NoError(t, pub.Publish("w"), "nothing to publish")
}

// publishCalls is how many sends the producer timed.
func publishCalls(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	var n uint64
	for _, f := range families {
		if f.GetName() == "auditstream_kafka_publish_duration_seconds" {
			for _, m := range f.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}
