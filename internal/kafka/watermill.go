package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// metadataRecord is the metadata entry of a message that NewMessage
// builds: the record's key and its ordered header list, encoded
// (encodeRecord), which watermill's Metadata, a map, cannot hold as entries
// of its own.
const metadataRecord = "_auditstream_kafka_record"

// NewMessage returns the watermill message of one record: value is its
// payload; key (nil for a record without key) and headers (in order,
// repeated keys kept, a null value told from an empty one) travel in one
// metadata entry of ours, so that a decorator of the Publisher that stores
// or forwards the message keeps them by keeping its metadata. uuid names
// the message in logs (the API uses the event id); it is not published.
func NewMessage(uuid string, key, value []byte, headers []Header) *message.Message {
	// NewMessage would also make the two acknowledgement channels, which
	// only subscribers use; Ack and Nack make them when needed.
	return &message.Message{UUID: uuid, Metadata: message.Metadata{metadataRecord: encodeRecord(key, headers)}, Payload: value}
}

// encodeRecord writes the key, the number of headers, then the key and
// value of each header: bytes as a zig-zag varint length (-1 for nil) and
// the bytes. It builds the string in place: one allocation.
func encodeRecord(key []byte, headers []Header) string {
	n := len(key) + 2*binary.MaxVarintLen32
	for _, h := range headers {
		n += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen32
	}
	var b strings.Builder
	b.Grow(n)
	var scratch [binary.MaxVarintLen64]byte
	put := func(v []byte) {
		if v == nil {
			b.Write(binary.AppendVarint(scratch[:0], -1))
			return
		}
		b.Write(binary.AppendVarint(scratch[:0], int64(len(v))))
		b.Write(v)
	}
	put(key)
	b.Write(binary.AppendUvarint(scratch[:0], uint64(len(headers))))
	for _, h := range headers {
		put(h.Key)
		put(h.Value)
	}
	return b.String()
}

var errBadRecord = errors.New("malformed record metadata")

// decodeRecord reads what encodeRecord wrote; the key and every header
// share b. header is called for each header, in order, after n tells how
// many there are.
func decodeRecord(b []byte, n func(int), header func(k, v []byte)) (key []byte, err error) {
	if key, b, err = cutBytes(b); err != nil {
		return nil, err
	}
	count, size := binary.Uvarint(b)
	if size <= 0 || count > uint64(len(b)) {
		return nil, errBadRecord
	}
	b = b[size:]
	n(int(count))
	for range count {
		var k, v []byte
		if k, b, err = cutBytes(b); err != nil {
			return nil, err
		}
		if v, b, err = cutBytes(b); err != nil {
			return nil, err
		}
		header(k, v)
	}
	if len(b) > 0 {
		return nil, errBadRecord
	}
	return key, nil
}

func cutBytes(b []byte) (v, rest []byte, err error) {
	n, size := binary.Varint(b)
	switch {
	case size <= 0 || n < -1 || n > int64(len(b)-size):
		return nil, nil, errBadRecord
	case n == -1:
		return nil, b[size:], nil
	}
	end := size + int(n)
	// Capped, so that appending to one's bytes cannot overwrite the next.
	return b[size:end:end], b[end:], nil
}

// recordParts returns the encoded record of msg: ok is false for a message
// without one (a record with neither key nor headers). Metadata of any
// other kind is refused: it would have to become headers in some order of
// our choosing, published differently from what the caller meant.
func recordParts(msg *message.Message) (encoded string, ok bool, err error) {
	encoded, ok = msg.Metadata[metadataRecord]
	known := 0
	if ok {
		known = 1
	}
	if len(msg.Metadata) > known {
		var extra []string
		for k := range msg.Metadata {
			if k != metadataRecord {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		return "", false, fmt.Errorf("message %s: metadata %q has no place in a Kafka record: build messages with kafka.NewMessage", msg.UUID, extra)
	}
	return encoded, ok, nil
}

// RecordOf returns the record msg stands for on topic: the inverse of
// NewMessage.
func RecordOf(topic string, msg *message.Message) (Record, error) {
	r := Record{Topic: topic, Value: msg.Payload}
	encoded, ok, err := recordParts(msg)
	if err != nil || !ok {
		return r, err
	}
	// A copy: the caller owns the record and may change its bytes.
	r.Key, err = decodeRecord([]byte(encoded),
		func(n int) {
			if n > 0 {
				r.Headers = make([]Header, 0, n)
			}
		},
		func(k, v []byte) { r.Headers = append(r.Headers, Header{Key: k, Value: v}) })
	if err != nil {
		return Record{}, fmt.Errorf("message %s: %w", msg.UUID, err)
	}
	return r, nil
}

// Publisher is watermill's message.Publisher over the acknowledged
// Producer: the messages of one Publish call are handed to Kafka together
// (one SendMessages, a few broker round trips for thousands of records)
// and Publish returns once every one is acknowledged, with the Producer's
// *PublishError otherwise. See the package comment for why it is not
// watermill-kafka's Publisher.
type Publisher struct {
	producer *Producer
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher publishes through producer, which its owner connects.
func NewPublisher(producer *Producer) *Publisher {
	return &Publisher{producer: producer}
}

// Publish sends msgs (built with NewMessage) to topic. A message that
// NewMessage did not build fails the whole call before anything is sent.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]*sarama.ProducerMessage, len(msgs))
	for i, msg := range msgs {
		pm, err := producerMessage(topic, msg)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		out[i] = pm
	}
	return p.producer.send(out)
}

// producerMessage is the sarama message of msg, decoded straight into
// sarama's types, each message with a header list of its own (the tracer
// rewrites traceparent in place). The key and header bytes are the
// metadata string's own, not a copy: this runs for every record the API
// publishes, and sarama only reads them (the sub-slices are capped, so an
// append cannot write into the string either).
func producerMessage(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(msg.Payload)}
	encoded, ok, err := recordParts(msg)
	if err != nil || !ok {
		return pm, err
	}
	key, err := decodeRecord(unsafe.Slice(unsafe.StringData(encoded), len(encoded)),
		func(n int) {
			if n > 0 {
				pm.Headers = make([]sarama.RecordHeader, 0, n)
			}
		},
		func(k, v []byte) { pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: k, Value: v}) })
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", msg.UUID, err)
	}
	if key != nil {
		pm.Key = sarama.ByteEncoder(key)
	}
	return pm, nil
}

// Close closes the producer (Producer.Close may be called as well).
func (p *Publisher) Close() error { return p.producer.Close() }
