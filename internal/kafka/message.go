package kafka

import (
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// Header is one record header. Kafka allows a key more than once, so
// headers travel as a list, in order.
type Header struct {
	Key   []byte
	Value []byte
}

// Message is one consumed record. Key, Value and the header bytes are the
// client's decoded buffers, not copies.
type Message struct {
	Topic string
	// TopicID is the topic's id (base64url, as Kafka's tools print it)
	// for records of a consumer group's claim, as of the session's start;
	// "" where the broker assigns none (before Kafka 2.8) and for records
	// read otherwise.
	TopicID   string
	Partition int32
	Offset    int64
	// Timestamp is the record's time as the broker reports it (create or
	// log-append time, per topic), zero when it has none.
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Coordinates names the record: "topic/partition@offset".
func (m *Message) Coordinates() string {
	return m.Topic + "/" + strconv.FormatInt(int64(m.Partition), 10) + "@" + strconv.FormatInt(m.Offset, 10)
}

// messageOf converts a record sarama consumed. It runs for every record the
// writer reads: the bytes are shared, only the header list is new.
func messageOf(m *sarama.ConsumerMessage) *Message {
	msg := &Message{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp,
		Key: m.Key, Value: m.Value,
	}
	if len(m.Headers) > 0 {
		msg.Headers = make([]Header, 0, len(m.Headers))
		for _, h := range m.Headers {
			if h != nil {
				msg.Headers = append(msg.Headers, Header{Key: h.Key, Value: h.Value})
			}
		}
	}
	return msg
}

// recordHeaders converts headers to publish.
func recordHeaders(hs []Header) []sarama.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	out := make([]sarama.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = sarama.RecordHeader{Key: h.Key, Value: h.Value}
	}
	return out
}
