package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// NewEventID returns a new UUIDv7 (time-ordered, which keeps index inserts
// local). If the random source fails it falls back to a UUIDv7 built from
// the clock and math/rand, so it never panics and never returns uuid.Nil.
func NewEventID() uuid.UUID {
	if id, err := uuid.NewV7(); err == nil {
		return id
	}
	var id uuid.UUID
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	binary.BigEndian.PutUint64(id[0:], ms<<16|rand.Uint64()&0x0fff)
	id[6] = id[6]&0x0f | 0x70 // version 7
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// DeterministicIDNamespace is the UUIDv5 namespace of DeterministicEventID.
// Never change it: stored ids depend on it.
var DeterministicIDNamespace = uuid.MustParse("6f1d8a52-3c1e-4b7a-9d3e-2a5c0e8b7f41")

// DeterministicEventID is the first derivation (v1) of the id of an event
// record produced to Kafka without event_id (SPEC 3), from its coordinates
// alone. The writer uses it only for dead letters written before
// DeterministicEventIDV2 (they carry no dlq-original-timestamp), so that
// they keep the id they had; every other record gets a V2 id. v1 gives a
// new record at a reused offset (a topic created again, a cluster rebuilt)
// the id of the old one, which made it a duplicate:
//
//	UUIDv5(namespace = 6f1d8a52-3c1e-4b7a-9d3e-2a5c0e8b7f41,
//	       name      = "<topic>/<partition>/<offset>")
//
// where partition and offset are in decimal without padding, e.g.
// "audit.events/3/1234567" (Kafka topic names cannot contain "/"). That is
// uuid.NewSHA1(DeterministicIDNamespace, []byte(name)).
//
// A record replayed from the DLQ lands at a new offset: derive its id from
// its original coordinates (the dlq-original-topic, -partition and -offset
// headers), or a replay after a partial failure would store it twice.
func DeterministicEventID(topic string, partition int32, offset int64) uuid.UUID {
	name := make([]byte, 0, len(topic)+32)
	name = append(name, topic...)
	name = append(name, '/')
	name = strconv.AppendInt(name, int64(partition), 10)
	name = append(name, '/')
	name = strconv.AppendInt(name, offset, 10)
	return uuid.NewSHA1(DeterministicIDNamespace, name)
}

// RecordOrigin is what DeterministicEventIDV2 derives an id from: where a
// record was first produced, and the record itself.
type RecordOrigin struct {
	Topic string
	// TopicID is the topic's Kafka topic id in base64url without padding
	// (as kafka-topics --describe prints it), "" where the broker has none.
	TopicID   string
	Partition int32
	Offset    int64
	// Timestamp is the record's timestamp in milliseconds since the Unix
	// epoch, as the broker returns it.
	Timestamp  int64
	Key, Value []byte
}

// DeterministicEventIDV2 returns the id of an event record produced to
// Kafka without event_id, distinguishing a redelivery of the record (same
// id) from a new record at a reused offset (new id):
//
//	UUIDv5(namespace = 6f1d8a52-3c1e-4b7a-9d3e-2a5c0e8b7f41,
//	       name      = "v2/<topic>/<topic id>/<partition>/<offset>/<timestamp>/<content>")
//
// where partition, offset and timestamp (milliseconds since the Unix epoch)
// are in decimal without padding, the topic id is as in RecordOrigin (empty
// when the broker has none), and content is the lowercase hex SHA-256 of
// the key's length as 8 big-endian bytes, the key, then the value (a null
// key counts as empty). For example
// "v2/audit.events/vtx0TaA6SBWj9-2fUwlZWg/3/1234567/1765591200000/9f86d0…".
// A topic created again gets a new topic id and new records new
// timestamps and contents; a redelivery is the same record, all alike.
//
// A record replayed from the DLQ lands at a new offset with a new
// timestamp: derive its id from where it was first produced (the
// dlq-original-* headers), or a replay after a partial failure would store
// it twice.
func DeterministicEventIDV2(o RecordOrigin) uuid.UUID {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(o.Key)))
	h.Write(n[:])
	h.Write(o.Key)
	h.Write(o.Value)
	var sum [sha256.Size]byte
	name := make([]byte, 0, len(o.Topic)+len(o.TopicID)+64+2*sha256.Size)
	name = append(name, "v2/"...)
	name = append(name, o.Topic...)
	name = append(name, '/')
	name = append(name, o.TopicID...)
	name = append(name, '/')
	name = strconv.AppendInt(name, int64(o.Partition), 10)
	name = append(name, '/')
	name = strconv.AppendInt(name, o.Offset, 10)
	name = append(name, '/')
	name = strconv.AppendInt(name, o.Timestamp, 10)
	name = append(name, '/')
	name = hex.AppendEncode(name, h.Sum(sum[:0]))
	return uuid.NewSHA1(DeterministicIDNamespace, name)
}
