package audit

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// ErrStored is wrapped by every error of ParseStoredEvent.
var ErrStored = errors.New("not a stored event")

// ParseStoredEvent reads an event in the form AppendStoredJSON writes (SPEC
// 2.5 AuditEvent, every field of the table), as exports carry it, so that a
// verifier holds exactly the values that were exported: nothing is
// validated, defaulted or normalised beyond its JSON type, and event_data
// is kept as its bytes. It is strict about shape, since a verifier must not
// guess: every member must be a field of the table, once; a member that is
// absent or null is an absent value; a value must have its kind's JSON
// type.
func ParseStoredEvent(raw []byte) (Event, error) {
	var members map[string]json.RawMessage
	if !validJSON(raw) || raw[skipSpace(raw, 0)] != '{' {
		return Event{}, fmt.Errorf("%w: not a JSON object", ErrStored)
	}
	if err := json.Unmarshal(raw, &members); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrStored, err)
	}
	var dup string
	n := 0
	eachMember(raw, func(key, _ []byte) bool {
		n++
		if n > len(members) {
			dup = string(key)
			return false
		}
		return true
	})
	if dup != "" {
		return Event{}, fmt.Errorf("%w: member %s given twice", ErrStored, dup)
	}
	var e Event
	for i := range eventFields {
		f := &eventFields[i]
		v, ok := members[f.Name]
		if !ok {
			continue
		}
		delete(members, f.Name)
		if isNull(v) {
			continue
		}
		if err := f.decodeStored(&e, v); err != nil {
			return Event{}, fmt.Errorf("%w: %s: %v", ErrStored, f.Name, err)
		}
	}
	for name := range members {
		return Event{}, fmt.Errorf("%w: unknown member %q (an export of a newer version?)", ErrStored, name)
	}
	return e, nil
}

// decodeStored sets f on e from its non-null JSON value v.
func (f *Field) decodeStored(e *Event, v json.RawMessage) error {
	str := func() (string, error) {
		var s string
		if v[0] != '"' {
			return "", errors.New("not a string")
		}
		err := json.Unmarshal(v, &s)
		return s, err
	}
	switch f.Kind {
	case KindText, KindEnum:
		s, err := str()
		*f.Str(e) = s
		return err
	case KindOptText:
		s, err := str()
		*f.OptStr(e) = &s
		return err
	case KindTimestamp, KindDate:
		s, err := str()
		if err != nil {
			return err
		}
		layout := time.RFC3339Nano
		if f.Kind == KindDate {
			layout = time.DateOnly
		}
		t, err := time.Parse(layout, s)
		*f.Time(e) = t.UTC()
		return err
	case KindID, KindOptUUID:
		s, err := str()
		if err != nil {
			return err
		}
		id, err := uuid.Parse(s)
		if f.Kind == KindID {
			*f.UUID(e) = id
		} else {
			*f.OptUUID(e) = &id
		}
		return err
	case KindOptCount, KindOptInt, KindOptSmallInt:
		bits := 64
		switch f.Kind {
		case KindOptInt:
			bits = 32
		case KindOptSmallInt:
			bits = 16
		}
		n, err := strconv.ParseInt(string(v), 10, bits)
		switch f.Kind {
		case KindOptCount:
			*f.OptInt(e) = &n
		case KindOptInt:
			n32 := int32(n)
			*f.OptInt32(e) = &n32
		default:
			small := int16(n)
			*f.OptSmallInt(e) = &small
		}
		return err
	case KindOptAddr:
		s, err := str()
		if err != nil {
			return err
		}
		a, err := netip.ParseAddr(s)
		*f.Addr(e) = a
		return err
	case KindFlag:
		return json.Unmarshal(v, f.Flag(e))
	case KindOptHash:
		s, err := str()
		if err != nil {
			return err
		}
		b, err := hex.DecodeString(s)
		if b == nil {
			b = []byte{} // present and empty: chain_seq 1's previous hash
		}
		*f.Bytes(e) = b
		return err
	case KindObject:
		if v[0] != '{' {
			return errors.New("not an object")
		}
		*f.Raw(e) = append(json.RawMessage(nil), v...)
		return nil
	}
	panic("audit: " + f.Name + ": the stored decoder has no rule for its kind")
}
