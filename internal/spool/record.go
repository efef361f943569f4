package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// recordVersion is the first byte of every spooled record; a process that
// finds another version in a spool refuses the record rather than
// guessing at its layout.
const recordVersion = 1

// entry is one spooled message, as read back.
type entry struct {
	topic     string
	msg       *message.Message
	spooledAt time.Time
	seg       *segment
}

// encodeRecord is the spooled form of msg: the version, the spool time,
// then topic, UUID, payload and every metadata entry, each as a length
// and its bytes. Persisting the UUID, the payload and the metadata is
// enough to publish the same record again (kafka.NewMessage keeps the key
// and the ordered headers in the metadata). Integrity is the journal's
// (a CRC-32C over every chunk), so the record carries no checksum of its own.
func encodeRecord(topic string, msg *message.Message, at time.Time) []byte {
	n := 1 + binary.MaxVarintLen64 + 4*binary.MaxVarintLen32 + len(topic) + len(msg.UUID) + len(msg.Payload)
	for k, v := range msg.Metadata {
		n += 2*binary.MaxVarintLen32 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
	b = binary.AppendVarint(b, at.UnixNano())
	b = appendBytes(b, topic)
	b = appendBytes(b, msg.UUID)
	b = appendBytes(b, msg.Payload)
	b = binary.AppendUvarint(b, uint64(len(msg.Metadata)))
	for k, v := range msg.Metadata {
		b = appendBytes(b, k)
		b = appendBytes(b, v)
	}
	return b
}

func appendBytes[T ~string | ~[]byte](b []byte, v T) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

var errBadRecord = errors.New("malformed spool record")

// decodeRecord reads what encodeRecord wrote. The payload is a sub-slice
// of b, which the caller hands over.
func decodeRecord(b []byte) (entry, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return entry{}, fmt.Errorf("%w: unknown version", errBadRecord)
	}
	d := decoder{b: b[1:]}
	at := d.varint()
	topic := string(d.bytes())
	uuid := string(d.bytes())
	payload := d.bytes()
	count := d.uvarint()
	if d.err == nil && count > uint64(len(d.b)) {
		d.err = errBadRecord
	}
	var md message.Metadata
	if d.err == nil && count > 0 {
		md = make(message.Metadata, count)
		for range count {
			k := string(d.bytes())
			md[k] = string(d.bytes())
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errBadRecord
	}
	if d.err != nil {
		return entry{}, d.err
	}
	// A literal, as kafka.NewMessage builds it: the acknowledgement
	// channels of message.NewMessage serve subscribers only.
	msg := &message.Message{UUID: uuid, Metadata: md, Payload: payload}
	return entry{topic: topic, msg: msg, spooledAt: time.Unix(0, at)}, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errBadRecord
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
