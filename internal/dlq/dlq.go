// Package dlq owns the dead-letter envelope of SPEC 6.1: the dlq-* headers a
// record carries while it is in audit.dlq, how the writer sets them when a
// record fails (again), and how the replayer reads and advances them. The
// original key, value and other headers travel byte for byte; dlq-* headers
// are replaced, never appended, so a record does not grow with each round.
//
// It does no I/O: headers in, Letter out, and back. The replay engine
// (Replay, DryRun, Measure, List) decides what to do with each dead letter
// and reads and moves records through small interfaces that
// internal/kafka's Reader, group Member and Producer satisfy, rather than
// through watermill's Kafka subscriber and publisher: a pass must read exactly the records present
// when it starts (offsets up to the high-water mark) without committing
// anything when it only lists, publish each record byte for byte
// (watermill's marshaler adds its own metadata header), and send a
// partition's records together before committing its offset.
package dlq

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
)

// Header names (SPEC 6.1).
const (
	HeaderOriginalTopic     = "dlq-original-topic"
	HeaderOriginalPartition = "dlq-original-partition"
	HeaderOriginalOffset    = "dlq-original-offset"
	// HeaderOriginalTopicID and HeaderOriginalTimestamp complete the
	// origin with what the writer derives event ids from
	// (audit.DeterministicEventIDV2): the topic's id (base64url, empty when
	// the broker has none) and the record's timestamp in milliseconds since
	// the Unix epoch.
	HeaderOriginalTopicID   = "dlq-original-topic-id"
	HeaderOriginalTimestamp = "dlq-original-timestamp"
	HeaderErrorClass        = "dlq-error-class"
	HeaderError             = "dlq-error"
	HeaderFirstFailedAt     = "dlq-first-failed-at"
	HeaderFailedAt          = "dlq-failed-at"
	HeaderAttempts          = "dlq-attempts"

	headerPrefix = "dlq-"
)

// MaxErrorBytes bounds the dlq-error header (SPEC 6.1: at most 1 KiB).
const MaxErrorBytes = 1024

// Letter is the dead-letter metadata of one record.
type Letter struct {
	OriginalTopic     string
	OriginalPartition int32
	OriginalOffset    int64
	// OriginalTopicID and OriginalTimestamp are set when RecordOrigin is:
	// on letters written since the headers exist.
	OriginalTopicID   string
	OriginalTimestamp int64
	RecordOrigin      bool
	// Class is errclass.Poison, errclass.Failed or errclass.Conflict, as
	// the writer decided.
	Class         errclass.Class
	Error         string
	FirstFailedAt time.Time
	FailedAt      time.Time
	// Attempts counts the replays so far: 0 when first dead-lettered.
	Attempts int
}

// Origin is where a record was first produced: its own coordinates, topic
// id and timestamp, or the dlq-original-* headers of a replayed record.
// Deterministic event ids are derived from it, so a record stored after a
// replay keeps its id.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
	TopicID   string
	// Timestamp is the record's, in milliseconds since the Unix epoch.
	Timestamp int64
	// CoordinatesOnly is set for a replay of a letter written before
	// dlq-original-topic-id and -timestamp existed: only its coordinates
	// are known, and its id is derived from them alone
	// (audit.DeterministicEventID), as it was when it failed.
	CoordinatesOnly bool
}

// OriginOf returns where the record was first produced.
func OriginOf(msg *kafka.Message) Origin {
	if l, ok := Parse(msg.Headers); ok {
		return Origin{Topic: l.OriginalTopic, Partition: l.OriginalPartition, Offset: l.OriginalOffset,
			TopicID: l.OriginalTopicID, Timestamp: l.OriginalTimestamp, CoordinatesOnly: !l.RecordOrigin}
	}
	return Origin{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, TopicID: msg.TopicID,
		Timestamp: msg.Timestamp.UnixMilli()}
}

// Parse reads the dlq-* headers; ok is false unless the origin headers are
// all present and well-formed (a record that never went through the DLQ, or
// whose headers a producer mangled, is treated as new).
func Parse(headers []kafka.Header) (Letter, bool) {
	var l Letter
	var haveTopic, havePartition, haveOffset, haveTopicID, haveTimestamp bool
	for _, h := range headers {
		v := string(h.Value)
		switch string(h.Key) {
		case HeaderOriginalTopic:
			l.OriginalTopic, haveTopic = v, v != ""
		case HeaderOriginalPartition:
			p, err := strconv.ParseInt(v, 10, 32)
			l.OriginalPartition, havePartition = int32(p), err == nil
		case HeaderOriginalOffset:
			o, err := strconv.ParseInt(v, 10, 64)
			l.OriginalOffset, haveOffset = o, err == nil
		case HeaderOriginalTopicID:
			l.OriginalTopicID, haveTopicID = v, true
		case HeaderOriginalTimestamp:
			ts, err := strconv.ParseInt(v, 10, 64)
			l.OriginalTimestamp, haveTimestamp = ts, err == nil
		case HeaderErrorClass:
			l.Class = errclass.Class(v)
		case HeaderError:
			l.Error = v
		case HeaderFirstFailedAt:
			l.FirstFailedAt, _ = time.Parse(time.RFC3339Nano, v)
		case HeaderFailedAt:
			l.FailedAt, _ = time.Parse(time.RFC3339Nano, v)
		case HeaderAttempts:
			l.Attempts, _ = strconv.Atoi(v)
		}
	}
	l.RecordOrigin = haveTopicID && haveTimestamp
	return l, haveTopic && havePartition && haveOffset
}

// Failure builds the letter for a record that failed now. A record that
// already went through the DLQ keeps its origin, first failure time and
// attempt count; the class, reason and failure time are replaced.
func Failure(msg *kafka.Message, class errclass.Class, reason string, now time.Time) Letter {
	if prev, ok := Parse(msg.Headers); ok {
		prev.Class, prev.Error, prev.FailedAt = class, Truncate(reason), now
		if prev.FirstFailedAt.IsZero() {
			prev.FirstFailedAt = now
		}
		return prev
	}
	return Letter{
		OriginalTopic:     msg.Topic,
		OriginalPartition: msg.Partition,
		OriginalOffset:    msg.Offset,
		OriginalTopicID:   msg.TopicID,
		OriginalTimestamp: msg.Timestamp.UnixMilli(),
		RecordOrigin:      true,
		Class:             class,
		Error:             Truncate(reason),
		FirstFailedAt:     now,
		FailedAt:          now,
	}
}

// Headers returns the record headers to publish: every header that is not
// dlq-* kept in order, then this letter's dlq-* headers.
func (l Letter) Headers(orig []kafka.Header) []kafka.Header {
	out := make([]kafka.Header, 0, len(orig)+10)
	for _, h := range orig {
		if !strings.HasPrefix(string(h.Key), headerPrefix) {
			out = append(out, h)
		}
	}
	add := func(k, v string) { out = append(out, kafka.Header{Key: []byte(k), Value: []byte(v)}) }
	add(HeaderOriginalTopic, l.OriginalTopic)
	add(HeaderOriginalPartition, strconv.FormatInt(int64(l.OriginalPartition), 10))
	add(HeaderOriginalOffset, strconv.FormatInt(l.OriginalOffset, 10))
	if l.RecordOrigin {
		add(HeaderOriginalTopicID, l.OriginalTopicID)
		add(HeaderOriginalTimestamp, strconv.FormatInt(l.OriginalTimestamp, 10))
	}
	add(HeaderErrorClass, string(l.Class))
	add(HeaderError, l.Error)
	add(HeaderFirstFailedAt, l.FirstFailedAt.UTC().Format(time.RFC3339Nano))
	add(HeaderFailedAt, l.FailedAt.UTC().Format(time.RFC3339Nano))
	add(HeaderAttempts, strconv.Itoa(l.Attempts))
	return out
}

// Truncate cuts a reason to MaxErrorBytes on a UTF-8 boundary, marking the cut.
func Truncate(reason string) string {
	if len(reason) <= MaxErrorBytes {
		return reason
	}
	const mark = "…"
	cut := MaxErrorBytes - len(mark)
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut] + mark
}
