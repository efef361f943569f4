package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/ThreeDotsLabs/watermill/message"
)

// The metadata entries of a message that NewMessage builds. They are not
// headers: they carry the record's key and its ordered header list, which
// watermill's Metadata (a map) cannot hold as entries of its own.
const (
	metadataKey     = "_auditstream_kafka_key"
	metadataHeaders = "_auditstream_kafka_headers"
)

// EncodedHeaders is a header list in the form a watermill message carries
// it (EncodeHeaders): in order, repeated keys kept, a null value told from
// an empty one. A request encodes its list once and every message of the
// request shares the string.
type EncodedHeaders string

// EncodeHeaders encodes hs: for the key and then the value of each header,
// a zig-zag varint length (-1 for nil) and the bytes.
func EncodeHeaders(hs []Header) EncodedHeaders {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	for _, h := range hs {
		b = appendBytes(appendBytes(b, h.Key), h.Value)
	}
	return EncodedHeaders(b)
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

// decode returns the header list; the bytes are one copy of e, shared by
// every header.
func (e EncodedHeaders) decode() ([]Header, error) {
	if e == "" {
		return nil, nil
	}
	b := []byte(e)
	var hs []Header
	for len(b) > 0 {
		var h Header
		var err error
		if h.Key, b, err = cutBytes(b); err != nil {
			return nil, err
		}
		if h.Value, b, err = cutBytes(b); err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

var errBadHeaders = errors.New("malformed encoded headers")

func cutBytes(b []byte) (v, rest []byte, err error) {
	n, size := binary.Varint(b)
	switch {
	case size <= 0 || n < -1 || n > int64(len(b)-size):
		return nil, nil, errBadHeaders
	case n == -1:
		return nil, b[size:], nil
	}
	end := size + int(n)
	// Capped, so that appending to one header's bytes cannot overwrite the
	// next header's.
	return b[size:end:end], b[end:], nil
}

// NewMessage returns the watermill message of one record: value is its
// payload, key (nil for a record without key) and headers travel in
// metadata entries of ours, so that a decorator of the Publisher that
// stores or forwards the message keeps them by keeping its metadata. uuid
// names the message in logs (the API uses the event id); it is not
// published.
func NewMessage(uuid string, key, value []byte, headers EncodedHeaders) *message.Message {
	md := make(message.Metadata, 2)
	if key != nil {
		md[metadataKey] = string(key)
	}
	if headers != "" {
		md[metadataHeaders] = string(headers)
	}
	// NewMessage would also make the two acknowledgement channels, which
	// only subscribers use; Ack and Nack make them when needed.
	return &message.Message{UUID: uuid, Metadata: md, Payload: value}
}

// RecordOf returns the record msg stands for on topic: the inverse of
// NewMessage.
func RecordOf(topic string, msg *message.Message) (Record, error) {
	var d recordDecoder
	return d.record(topic, msg)
}

// recordDecoder turns messages into records, decoding a header list once
// for a run of messages that share it (the messages of one request).
type recordDecoder struct {
	encoded EncodedHeaders
	headers []Header
}

func (d *recordDecoder) record(topic string, msg *message.Message) (Record, error) {
	r := Record{Topic: topic, Value: msg.Payload}
	known := 0
	if key, ok := msg.Metadata[metadataKey]; ok {
		r.Key = []byte(key)
		known++
	}
	if encoded, ok := msg.Metadata[metadataHeaders]; ok {
		known++
		if EncodedHeaders(encoded) != d.encoded {
			hs, err := EncodedHeaders(encoded).decode()
			if err != nil {
				return Record{}, fmt.Errorf("message %s: %w", msg.UUID, err)
			}
			d.encoded, d.headers = EncodedHeaders(encoded), hs
		}
		r.Headers = d.headers
	}
	if len(msg.Metadata) > known {
		// Anything else would have to become a header in some order of
		// our choosing: refused rather than published differently from
		// what the caller meant.
		var extra []string
		for k := range msg.Metadata {
			if k != metadataKey && k != metadataHeaders {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		return Record{}, fmt.Errorf("message %s: metadata %q has no place in a Kafka record: build messages with kafka.NewMessage", msg.UUID, extra)
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
	records := make([]Record, len(msgs))
	var d recordDecoder
	for i, msg := range msgs {
		r, err := d.record(topic, msg)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		records[i] = r
	}
	// The messages of one call share the request's context; the Producer
	// bounds the wait itself.
	return p.producer.Publish(msgs[0].Context(), records)
}

// Close closes the producer (Producer.Close may be called as well).
func (p *Publisher) Close() error { return p.producer.Close() }
