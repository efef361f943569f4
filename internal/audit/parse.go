package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Notification column sizes (SPEC 2.4), in characters; the event's are in
// its field table.
const (
	maxShort          = 255 // remediation_id, notification_id, delivery_status
	maxRecipient      = 500
	maxLong           = 1000 // message_summary, error_message
	maxEscalation     = 5
	maxDateTimeLength = 64
)

// ParseEvent validates one AuditEventRequest JSON object. acceptedAt is the
// API receive time, or the Kafka record timestamp in the writer; an
// event_timestamp more than r.MaxFutureSkew after it is rejected. The error
// is a FieldErrors or a *BodyError. Event.EventID is uuid.Nil when the record
// carries no event_id.
func (r Rules) ParseEvent(raw []byte, acceptedAt time.Time) (Event, error) {
	utf8OK, berr := prepare(raw, '{')
	if berr != nil {
		return Event{}, berr
	}
	p := parser{rules: &r, acceptedAt: acceptedAt, utf8OK: utf8OK, index: -1}
	ev, ok := p.event(raw)
	if p.body != nil {
		return Event{}, p.body
	}
	if !ok {
		return Event{}, p.errs
	}
	return ev, nil
}

// ParseEventBatch validates a JSON array of 1..maxEvents AuditEventRequest
// objects, all or nothing: any invalid element makes it return FieldErrors
// naming every bad field of every element as "[i].field". Body-level
// problems (including an empty or oversized batch) are a *BodyError. The
// limit is the API's (records reach the writer one by one), hence a
// parameter rather than one of the Rules.
func (r Rules) ParseEventBatch(raw []byte, acceptedAt time.Time, maxEvents int) ([]Event, error) {
	utf8OK, berr := prepare(raw, '[')
	if berr != nil {
		return nil, berr
	}
	n := 0
	eachElement(raw, func([]byte) { n++ })
	if n == 0 {
		return nil, bodyErr(ErrEmptyBatch, "batch must contain at least one event")
	}
	if n > maxEvents {
		return nil, bodyErr(ErrBatchTooLarge, "batch contains "+strconv.Itoa(n)+" events; at most "+strconv.Itoa(maxEvents)+" are allowed")
	}
	p := parser{rules: &r, acceptedAt: acceptedAt, utf8OK: utf8OK}
	events := make([]Event, 0, n)
	// firstWith maps each event_id to the element that carried it first.
	// Two elements with one id would be answered "n accepted" and stored
	// once, the second dropped as a duplicate; both are rejected instead.
	var firstWith map[uuid.UUID]int
	var earlier FieldErrors // the first elements' share of those errors
	i := 0
	eachElement(raw, func(v []byte) {
		if p.body != nil {
			return
		}
		p.index = i
		i++
		if v[0] != '{' {
			p.fail("", ReasonType, msgObject)
			return
		}
		ev, ok := p.event(v)
		if ev.EventID != uuid.Nil {
			if firstWith == nil {
				firstWith = make(map[uuid.UUID]int, n)
			}
			if first, seen := firstWith[ev.EventID]; seen {
				p.fail("event_id", ReasonDuplicate, msgDuplicateID(first))
				if !slices.ContainsFunc(earlier, func(e FieldError) bool { return e.Field == elementField(first, "event_id") }) {
					earlier = append(earlier, FieldError{Field: elementField(first, "event_id"), Reason: ReasonDuplicate, Message: msgDuplicateID(p.index)})
				}
				ok = false
			} else {
				firstWith[ev.EventID] = p.index
			}
		}
		if ok {
			events = append(events, ev)
		}
	})
	if p.body != nil {
		return nil, p.body
	}
	if len(earlier) > 0 {
		// In element order; within an element event_id is the last field
		// of the table, so it follows the element's other errors.
		p.errs = append(p.errs, earlier...)
		slices.SortStableFunc(p.errs, func(a, b FieldError) int { return elementIndex(a.Field) - elementIndex(b.Field) })
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return events, nil
}

// elementField names field of batch element i, as FieldError.Field does.
func elementField(i int, field string) string {
	return "[" + strconv.Itoa(i) + "]." + field
}

// elementIndex returns i of a batch FieldError.Field, "[i]" or "[i].field".
func elementIndex(field string) int {
	end := strings.IndexByte(field, ']')
	n, _ := strconv.Atoi(field[1:end])
	return n
}

// ParseNotification validates one NotificationAudit JSON object. sent_at
// more than r.MaxFutureSkew after acceptedAt is rejected. id, created_at and
// updated_at are parsed when present (records the API published carry them);
// the API overwrites them for client requests.
func (r Rules) ParseNotification(raw []byte, acceptedAt time.Time) (Notification, error) {
	utf8OK, berr := prepare(raw, '{')
	if berr != nil {
		return Notification{}, berr
	}
	p := parser{rules: &r, acceptedAt: acceptedAt, utf8OK: utf8OK, index: -1}
	var v [nNotifFields][]byte
	p.collect(raw, notifField, v[:])
	if p.body != nil {
		return Notification{}, p.body
	}
	var n Notification
	n.RemediationID, _ = p.text("remediation_id", v[nRemediationID], true, maxShort)
	n.NotificationID, _ = p.text("notification_id", v[nNotificationID], true, maxShort)
	n.Recipient, _ = p.text("recipient", v[nRecipient], true, maxRecipient)
	n.Channel = p.enum("channel", v[nChannel], notificationChannels)
	n.MessageSummary, _ = p.text("message_summary", v[nMessageSummary], true, maxLong)
	n.Status = p.enum("status", v[nStatus], notificationStatuses)
	n.SentAt = p.dateTime("sent_at", v[nSentAt], true, true)
	n.DeliveryStatus = p.optText("delivery_status", v[nDeliveryStatus], maxShort)
	n.ErrorMessage = p.optText("error_message", v[nErrorMessage], maxLong)
	if lvl, ok := p.integer("escalation_level", v[nEscalationLevel], 0, maxEscalation, "must be an integer between 0 and 5"); ok {
		l := int32(lvl)
		n.EscalationLevel = &l
	}
	n.ID, _ = p.integer("id", v[nID], 1, 1<<63-1, msgIDPositive)
	n.CreatedAt = p.dateTime("created_at", v[nCreatedAt], false, false)
	n.UpdatedAt = p.dateTime("updated_at", v[nUpdatedAt], false, false)
	if len(p.errs) > 0 {
		return Notification{}, p.errs
	}
	return n, nil
}

// prepare checks the document as a whole: valid JSON with the expected
// top-level type. It reports whether the whole document is valid UTF-8 (then
// per-field UTF-8 checks are skipped).
func prepare(raw []byte, open byte) (bool, *BodyError) {
	if !validJSON(raw) {
		return false, malformed(raw)
	}
	if c := raw[skipSpace(raw, 0)]; c != open {
		if open == '{' {
			return false, bodyErr(ErrNotObject, "body must be a JSON object, got "+jsonKind(c))
		}
		return false, bodyErr(ErrNotArray, "body must be a JSON array of events, got "+jsonKind(c))
	}
	return utf8.Valid(raw), nil
}

func malformed(raw []byte) *BodyError {
	if len(bytes.TrimSpace(raw)) == 0 {
		return bodyErr(ErrMalformed, "body is empty; a JSON document is required")
	}
	// Unmarshal checks syntax before decoding anything, so this only costs a
	// scan and yields the offset.
	var v json.RawMessage
	err := json.Unmarshal(raw, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return bodyErr(ErrMalformed, "body is not valid JSON: "+se.Error()+" (at byte offset "+strconv.FormatInt(se.Offset, 10)+")")
	}
	return bodyErr(ErrMalformed, "body is not valid JSON")
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// Notification fields, in the order errors are reported (SPEC 2.4 order).
const (
	nRemediationID = iota
	nNotificationID
	nRecipient
	nChannel
	nMessageSummary
	nStatus
	nSentAt
	nDeliveryStatus
	nErrorMessage
	nEscalationLevel
	nID
	nCreatedAt
	nUpdatedAt
	nNotifFields
)

func notifField(k []byte) int {
	switch string(k) {
	case "remediation_id":
		return nRemediationID
	case "notification_id":
		return nNotificationID
	case "recipient":
		return nRecipient
	case "channel":
		return nChannel
	case "message_summary":
		return nMessageSummary
	case "status":
		return nStatus
	case "sent_at":
		return nSentAt
	case "delivery_status":
		return nDeliveryStatus
	case "error_message":
		return nErrorMessage
	case "escalation_level":
		return nEscalationLevel
	case "id":
		return nID
	case "created_at":
		return nCreatedAt
	case "updated_at":
		return nUpdatedAt
	}
	return -1
}

// parser validates one record (or the elements of a batch) and collects
// errors.
type parser struct {
	rules      *Rules
	acceptedAt time.Time
	utf8OK     bool // the whole document is valid UTF-8
	index      int  // batch element index, -1 for a single record
	errs       FieldErrors
	body       *BodyError
}

func (p *parser) fail(field, reason, msg string) {
	if p.index >= 0 {
		if field == "" {
			field = "[" + strconv.Itoa(p.index) + "]"
		} else {
			field = elementField(p.index, field)
		}
	}
	p.errs = append(p.errs, FieldError{Field: field, Reason: reason, Message: msg})
}

func (p *parser) bodyFail(sentinel error, detail string) {
	if p.index >= 0 {
		detail = "element [" + strconv.Itoa(p.index) + "]: " + detail
	}
	p.body = bodyErr(sentinel, detail)
}

// event validates one event object; ok is false if a field was rejected or
// a body error was set.
func (p *parser) event(obj []byte) (Event, bool) {
	var v [len(eventFields)][]byte
	p.collect(obj, requestField, v[:])
	if p.body != nil {
		return Event{}, false
	}
	before := len(p.errs)
	var e Event
	for i := range eventFields {
		if f := &eventFields[i]; f.Source == Request {
			p.field(f, v[i], &e)
		}
	}
	return e, len(p.errs) == before
}

// field validates the raw value of f (nil when absent) and stores it in e.
func (p *parser) field(f *Field, raw []byte, e *Event) {
	switch f.Kind {
	case KindText:
		*f.Str(e), _ = p.text(f.Name, raw, true, f.MaxLen)
	case KindOptText:
		*f.OptStr(e) = p.optText(f.Name, raw, f.MaxLen)
	case KindEnum:
		if f.Values == nil {
			*f.Str(e) = p.category(f.Name, raw)
			break
		}
		*f.Str(e) = p.enum(f.Name, raw, f.Values)
	case KindTimestamp:
		*f.Time(e) = p.dateTime(f.Name, raw, true, true)
	case KindID:
		if id, ok := p.uuid(f.Name, raw); ok {
			if id == uuid.Nil {
				p.fail(f.Name, ReasonFormat, msgNilUUID)
			}
			*f.UUID(e) = id
		}
	case KindOptUUID:
		if id, ok := p.uuid(f.Name, raw); ok {
			*f.OptUUID(e) = &id
		}
	case KindOptCount:
		if n, ok := p.integer(f.Name, raw, 0, 1<<63-1, msgIntNonNeg); ok {
			*f.OptInt(e) = &n
		}
	case KindObject:
		*f.Raw(e) = p.object(f.Name, raw)
	case KindOptAddr:
		*f.Addr(e) = p.addr(f.Name, raw, f.MaxLen)
	case KindFlag:
		*f.Flag(e) = p.flag(f.Name, raw)
	case KindOptInt:
		msg := "must be an integer between " + strconv.Itoa(int(f.Min)) + " and " + strconv.Itoa(int(f.Max))
		if n, ok := p.integer(f.Name, raw, int64(f.Min), int64(f.Max), msg); ok {
			v := int32(n)
			*f.OptInt32(e) = &v
		}
	default:
		panic("audit: " + f.Name + ": the parser has no rule for its kind")
	}
}

// collect stores the raw value of every known member of obj in vals (index
// from lookup) and checks everything else (keys, unknown members, earlier
// duplicates) for invalid UTF-8 and NUL, which are body errors.
func (p *parser) collect(obj []byte, lookup func([]byte) int, vals [][]byte) {
	eachMember(obj, func(key, val []byte) bool {
		name := key[1 : len(key)-1]
		if !p.utf8OK && !utf8.Valid(name) {
			p.bodyFail(ErrInvalidUTF8, "a field name is not valid UTF-8")
			return false
		}
		if bytes.IndexByte(name, '\\') >= 0 {
			s, prob := unquote(name)
			switch prob {
			case escNUL:
				p.bodyFail(ErrNUL, `a field name contains a NUL character (\u0000)`)
				return false
			case escSurrogate:
				p.bodyFail(ErrInvalidUTF8, "a field name contains an unpaired UTF-16 surrogate escape")
				return false
			}
			name = []byte(s)
		}
		idx := lookup(name)
		if idx < 0 {
			p.checkForeign(name, val)
		} else {
			if vals[idx] != nil {
				p.checkForeign(name, vals[idx])
			}
			vals[idx] = val
		}
		return p.body == nil
	})
}

// checkForeign checks a value that is not validated as a known field.
func (p *parser) checkForeign(name, val []byte) {
	if !p.utf8OK && !utf8.Valid(val) {
		p.bodyFail(ErrInvalidUTF8, "field "+strconv.Quote(string(name))+" is not valid UTF-8")
		return
	}
	if bytes.IndexByte(val, '\\') < 0 {
		return
	}
	switch scanEscapes(val) {
	case escNUL:
		p.bodyFail(ErrNUL, "field "+strconv.Quote(string(name))+` contains a NUL character (\u0000)`)
	case escSurrogate:
		p.bodyFail(ErrInvalidUTF8, "field "+strconv.Quote(string(name))+" contains an unpaired UTF-16 surrogate escape")
	}
}

func isNull(raw []byte) bool { return raw == nil || raw[0] == 'n' }

// str decodes a string field. ok is false when the field is absent or null
// (an error is added if required) or invalid (an error is added).
func (p *parser) str(name string, raw []byte, required bool) (string, bool) {
	if isNull(raw) {
		if required {
			p.fail(name, ReasonRequired, msgRequired)
		}
		return "", false
	}
	if raw[0] != '"' {
		p.fail(name, ReasonType, msgString)
		return "", false
	}
	if !p.utf8OK && !utf8.Valid(raw) {
		p.fail(name, ReasonUTF8, msgUTF8)
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	s, prob := unquote(inner)
	switch prob {
	case escNUL:
		p.fail(name, ReasonNUL, msgNUL)
		return "", false
	case escSurrogate:
		p.fail(name, ReasonUTF8, msgSurrogate)
		return "", false
	}
	return s, true
}

// text validates a string of at most maxLen characters; required ones must
// not be empty.
func (p *parser) text(name string, raw []byte, required bool, maxLen int) (string, bool) {
	s, ok := p.str(name, raw, required)
	if !ok {
		return "", false
	}
	if required && s == "" {
		p.fail(name, ReasonEmpty, msgEmpty)
		return "", false
	}
	// A string of n bytes has at most n characters.
	if len(s) > maxLen && utf8.RuneCountInString(s) > maxLen {
		p.fail(name, ReasonTooLong, msgTooLong(maxLen))
		return "", false
	}
	return s, true
}

func (p *parser) optText(name string, raw []byte, maxLen int) *string {
	if s, ok := p.text(name, raw, false, maxLen); ok {
		return &s
	}
	return nil
}

// enum validates a required string from a fixed set (an empty string is an
// enum error: the list of allowed values helps more than "must not be empty").
func (p *parser) enum(name string, raw []byte, allowed []string) string {
	s, ok := p.str(name, raw, true)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return a
		}
	}
	p.fail(name, ReasonEnum, msgEnum(allowed))
	return ""
}

// category validates event_category: one of the configured categories, or
// the reserved SystemCategory when the rules accept it (the writer, which
// then checks who sent it; SPEC 10).
func (p *parser) category(name string, raw []byte) string {
	s, ok := p.str(name, raw, true)
	if !ok {
		return ""
	}
	if s == SystemCategory {
		if p.rules.AcceptSystemCategory {
			return SystemCategory
		}
		p.fail(name, ReasonReserved, msgReserved)
		return ""
	}
	for _, a := range p.rules.Categories {
		if s == a {
			return a
		}
	}
	p.fail(name, ReasonEnum, msgEnum(p.rules.Categories))
	return ""
}

// addr validates an optional IP address of at most maxLen characters (see
// KindOptAddr).
func (p *parser) addr(name string, raw []byte, maxLen int) netip.Addr {
	s, ok := p.text(name, raw, false, maxLen)
	if !ok {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		// inet has no zones, and a link-local zone names an interface of
		// the sender's host, which means nothing here.
		p.fail(name, ReasonFormat, msgAddr)
		return netip.Addr{}
	}
	return a.Unmap()
}

// flag validates an optional boolean; absent or null is false.
func (p *parser) flag(name string, raw []byte) bool {
	if isNull(raw) {
		return false
	}
	switch string(raw) {
	case "true":
		return true
	case "false":
		return false
	}
	p.fail(name, ReasonType, msgBool)
	return false
}

// uuid validates an optional UUID in the 36-character hyphenated form.
func (p *parser) uuid(name string, raw []byte) (uuid.UUID, bool) {
	s, ok := p.str(name, raw, false)
	if !ok {
		return uuid.Nil, false
	}
	if len(s) != 36 {
		p.fail(name, ReasonFormat, msgUUID)
		return uuid.Nil, false
	}
	id, err := uuid.Parse(s)
	if err != nil {
		p.fail(name, ReasonFormat, msgUUID)
		return uuid.Nil, false
	}
	return id, true
}

// dateTime validates an RFC 3339 date-time and returns it in UTC truncated
// to microseconds; the zero time when absent or invalid. With future set, a
// time more than MaxFutureSkew after acceptedAt is rejected.
func (p *parser) dateTime(name string, raw []byte, required, future bool) time.Time {
	s, ok := p.str(name, raw, required)
	if !ok {
		return time.Time{}
	}
	t, ok := ParseDateTime(s)
	if !ok {
		p.fail(name, ReasonFormat, msgDateTime)
		return time.Time{}
	}
	t = t.Truncate(time.Microsecond)
	if y := t.Year(); y < 1 || y > 9999 {
		p.fail(name, ReasonRange, msgYearRange)
		return time.Time{}
	}
	if future && t.After(p.acceptedAt.Add(p.rules.MaxFutureSkew)) {
		p.fail(name, ReasonFuture, "must not be more than "+p.rules.MaxFutureSkew.String()+" in the future")
		return time.Time{}
	}
	return t
}

// layoutNoSeconds is RFC 3339 without seconds, as in the seed's examples.
const layoutNoSeconds = "2006-01-02T15:04Z07:00"

// ParseDateTime reads an RFC 3339 date-time with an offset (seconds
// optional, as in the seed's 2025-12-13T02:00Z) and returns it in UTC, at
// the precision given. Two things RFC 3339 says that time.Parse does not
// check or allow are handled here:
//   - offsets are at most 23:59 either way (time.Parse takes +24:00 and
//     shifts the instant by a whole day);
//   - second 60 is a leap second, valid at 23:59 UTC on the last day of a
//     month. time.Time cannot represent it, so the whole leap second is
//     read as 23:59:59.999999 UTC: the last microsecond of that day, so
//     the event keeps its date, its month and its order before anything
//     stamped in the next second.
func ParseDateTime(s string) (time.Time, bool) {
	// Shortest: 2006-01-02T15:04Z.
	if len(s) < len("2006-01-02T15:04Z") || len(s) > maxDateTimeLength {
		return time.Time{}, false
	}
	// Go also accepts a comma before fractional seconds; RFC 3339 does not.
	if strings.IndexByte(s, ',') >= 0 {
		return time.Time{}, false
	}
	if !offsetInRange(s) {
		return time.Time{}, false
	}
	// RFC 3339 allows lower-case "t" and "z"; Go's parser does not.
	leap := len(s) >= len("2006-01-02T15:04:05Z") && s[16] == ':' && s[17:19] == "60"
	if s[10] == 't' || s[len(s)-1] == 'z' || leap {
		b := []byte(s)
		if b[10] == 't' {
			b[10] = 'T'
		}
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		if leap {
			b[17], b[18] = '5', '9'
		}
		s = string(b)
	}
	layout := time.RFC3339Nano
	if s[16] != ':' {
		layout = layoutNoSeconds
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, false
	}
	t = t.UTC()
	if leap {
		if t.Hour() != 23 || t.Minute() != 59 || t.AddDate(0, 0, 1).Day() != 1 {
			return time.Time{}, false
		}
		t = time.Date(t.Year(), t.Month(), t.Day(), 23, 59, 59, 999999000, time.UTC)
	}
	return t, true
}

// offsetInRange rejects a numeric offset whose hours pass 23 or minutes 59;
// anything that is not a well-formed offset is left to time.Parse.
func offsetInRange(s string) bool {
	if len(s) < 6 {
		return true
	}
	off := s[len(s)-6:]
	if off[0] != '+' && off[0] != '-' || off[3] != ':' {
		return true
	}
	return off[1:3] <= "23" && off[4:6] <= "59"
}

// integer validates an optional JSON integer in [lo, hi]. msg is used for
// both type and range errors, except for values beyond int64.
func (p *parser) integer(name string, raw []byte, lo, hi int64, msg string) (int64, bool) {
	if isNull(raw) {
		return 0, false
	}
	v, kind := parseJSONInt(raw)
	switch kind {
	case intNotInteger:
		p.fail(name, ReasonType, msg)
		return 0, false
	case intOverflow:
		if hi == 1<<63-1 && raw[0] != '-' {
			msg = "must be at most 9223372036854775807"
		}
		p.fail(name, ReasonRange, msg)
		return 0, false
	}
	if v < lo || v > hi {
		p.fail(name, ReasonRange, msg)
		return 0, false
	}
	return v, true
}

type intKind uint8

const (
	intOK intKind = iota
	intNotInteger
	intOverflow
)

// parseJSONInt parses a raw JSON value as an integer written without
// fraction or exponent.
func parseJSONInt(raw []byte) (int64, intKind) {
	neg := raw[0] == '-'
	digits := raw
	if neg {
		digits = raw[1:]
	}
	if len(digits) == 0 {
		return 0, intNotInteger
	}
	// JSON has no leading zeros, so more than 19 digits exceeds int64 (and
	// 19 digits cannot overflow uint64).
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, intNotInteger // string, bool, object, fraction, exponent
		}
	}
	if len(digits) > 19 {
		return 0, intOverflow
	}
	var v uint64
	for _, c := range digits {
		v = v*10 + uint64(c-'0')
	}
	if neg {
		if v > 1<<63 {
			return 0, intOverflow
		}
		return -int64(v), intOK
	}
	if v > 1<<63-1 {
		return 0, intOverflow
	}
	return int64(v), intOK
}

// object validates a required JSON object (event_data): valid UTF-8 without
// NUL or unpaired surrogate escapes anywhere, numbers PostgreSQL's jsonb can
// store, at most MaxEventDataBytes compacted. It returns the compacted copy.
func (p *parser) object(name string, raw []byte) json.RawMessage {
	if isNull(raw) {
		p.fail(name, ReasonRequired, msgRequired)
		return nil
	}
	if raw[0] != '{' {
		p.fail(name, ReasonType, msgObject)
		return nil
	}
	if !p.utf8OK && !utf8.Valid(raw) {
		p.fail(name, ReasonUTF8, msgUTF8)
		return nil
	}
	if bytes.IndexByte(raw, '\\') >= 0 {
		switch scanEscapes(raw) {
		case escNUL:
			p.fail(name, ReasonNUL, msgNUL)
			return nil
		case escSurrogate:
			p.fail(name, ReasonUTF8, msgSurrogate)
			return nil
		}
	}
	if !numbersFit(raw) {
		p.fail(name, ReasonRange, msgNumberRange)
		return nil
	}
	out := appendCompact(make([]byte, 0, len(raw)), raw)
	if max := p.rules.MaxEventDataBytes; len(out) > max {
		p.fail(name, ReasonTooLarge, "must be at most "+strconv.Itoa(max)+" bytes when serialized")
		return nil
	}
	return out
}
