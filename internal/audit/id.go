package audit

import (
	"encoding/binary"
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

// DeterministicEventID returns the id of an event record that was produced to
// Kafka without event_id (SPEC 3), so that redelivery of the same record
// yields the same id:
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
