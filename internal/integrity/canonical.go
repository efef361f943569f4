package integrity

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
)

// HashVersion is the version of the canonical form this package computes,
// stored with every event as hash_version.
const HashVersion int16 = 1

// timeLayout is the canonical timestamp: UTC, always six fractional
// digits (the microseconds PostgreSQL keeps).
const timeLayout = "2006-01-02T15:04:05.000000Z"

// canonicalFields are the fields canonical(event) covers, sorted by name:
// every field of audit's table except event_date, which PostgreSQL
// derives from event_timestamp, and the chain's two hashes, which are
// computed from the form (previous_event_hash enters the HMAC ahead of
// it). ingested_at is not a field.
var canonicalFields = func() []audit.Field {
	var fields []audit.Field
	for _, f := range audit.EventFields() {
		if f.Source != audit.Database && f.Kind != audit.KindOptHash {
			fields = append(fields, f)
		}
	}
	slices.SortFunc(fields, func(a, b audit.Field) int { return compareBytes([]byte(a.Name), []byte(b.Name)) })
	return fields
}()

// AppendCanonical appends canonical(e), version HashVersion, to dst. It is
// a sequence of the fields that have a value (null ones are left out),
// sorted by name, each as
//
//	name 0x00 uint32-big-endian(len(value)) value
//
// with the value as UTF-8 text: strings as they are; event_timestamp as
// 2006-01-02T15:04:05.000000Z (UTC, six fractional digits); UUIDs in
// lowercase 36-character form; integers in decimal; actor_ip in
// netip.Addr's canonical form (as reads return it); is_sensitive as
// "true", and left out when false; event_data as canonical JSON
// (AppendCanonicalJSON). Names are framed by the NUL no
// name contains and values by their length, so every event has one
// encoding and no two events share one; a null field and an empty string
// differ (absent, or present with length 0). The README spells it out
// with a worked example (TestReadmeExample keeps the two equal).
//
// A field added to the table later is left out while it is null, so the
// events stored before it keep their bytes; a field that always has a
// value needs a new hash_version.
//
// The only error is event_data that is not canonicalisable JSON
// (ErrJSON).
func AppendCanonical(dst []byte, e *audit.Event) ([]byte, error) {
	for i := range canonicalFields {
		f := &canonicalFields[i]
		var err error
		if dst, err = appendField(dst, f, e); err != nil {
			return nil, fmt.Errorf("canonical %s: %w", f.Name, err)
		}
	}
	return dst, nil
}

// appendField appends f's frame, or nothing when e has no value for it.
func appendField(dst []byte, f *audit.Field, e *audit.Event) ([]byte, error) {
	head := len(dst)
	dst = append(append(dst, f.Name...), 0, 0, 0, 0, 0)
	start := len(dst)
	switch f.Kind {
	case audit.KindText, audit.KindEnum:
		dst = append(dst, *f.Str(e)...)
	case audit.KindOptText:
		s := *f.OptStr(e)
		if s == nil {
			return dst[:head], nil
		}
		dst = append(dst, *s...)
	case audit.KindTimestamp:
		dst = appendTime(dst, *f.Time(e))
	case audit.KindID:
		dst = appendUUID(dst, *f.UUID(e))
	case audit.KindOptUUID:
		id := *f.OptUUID(e)
		if id == nil {
			return dst[:head], nil
		}
		dst = appendUUID(dst, *id)
	case audit.KindOptCount:
		n := *f.OptInt(e)
		if n == nil {
			return dst[:head], nil
		}
		dst = strconv.AppendInt(dst, *n, 10)
	case audit.KindOptSmallInt:
		n := *f.OptSmallInt(e)
		if n == nil {
			return dst[:head], nil
		}
		dst = strconv.AppendInt(dst, int64(*n), 10)
	case audit.KindOptAddr:
		a := *f.Addr(e)
		if !a.IsValid() {
			return dst[:head], nil
		}
		dst = a.AppendTo(dst)
	case audit.KindFlag:
		// false, the default, is left out like a null, so the events
		// stored before the flag existed keep their bytes (and version).
		if !*f.Flag(e) {
			return dst[:head], nil
		}
		dst = append(dst, "true"...)
	case audit.KindOptInt:
		n := *f.OptInt32(e)
		if n == nil {
			return dst[:head], nil
		}
		dst = strconv.AppendInt(dst, int64(*n), 10)
	case audit.KindObject:
		raw := *f.Raw(e)
		if len(raw) == 0 {
			raw = []byte("{}") // as the store writes an empty EventData
		}
		var err error
		if dst, err = AppendCanonicalJSON(dst, raw); err != nil {
			return nil, err
		}
	default:
		panic("integrity: " + f.Name + ": no canonical rule for its kind")
	}
	binary.BigEndian.PutUint32(dst[start-4:start], uint32(len(dst)-start))
	return dst, nil
}

// appendTime appends t in timeLayout; the same as t.UTC().AppendFormat(dst,
// timeLayout) for the years 0-9999, several times faster, and every event
// has one.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timeLayout)
	}
	hour, minute, sec := t.Clock()
	var buf [len(timeLayout)]byte
	digits := func(at, width, n int) {
		for i := at + width - 1; i >= at; i-- {
			buf[i] = byte('0' + n%10)
			n /= 10
		}
	}
	digits(0, 4, year)
	buf[4] = '-'
	digits(5, 2, int(month))
	buf[7] = '-'
	digits(8, 2, day)
	buf[10] = 'T'
	digits(11, 2, hour)
	buf[13] = ':'
	digits(14, 2, minute)
	buf[16] = ':'
	digits(17, 2, sec)
	buf[19] = '.'
	digits(20, 6, t.Nanosecond()/1000)
	buf[26] = 'Z'
	return append(dst, buf[:]...)
}

func appendUUID(dst []byte, id uuid.UUID) []byte {
	var buf [36]byte
	// uuid.UUID.MarshalText cannot fail; encode without allocating.
	j := 0
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j], buf[j+1] = hexDigits[b>>4], hexDigits[b&0xf]
		j += 2
	}
	return append(dst, buf[:]...)
}
