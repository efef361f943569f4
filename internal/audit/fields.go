package audit

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/google/uuid"
)

// Kind is a field's representation: its Go type in Event, its JSON form and
// rules, and its column type. Code that handles the fields one by one (the
// parser, the encoders, the COPY row, the query scan) has one case per kind,
// so a new field of an existing kind is only a new entry in the table.
type Kind uint8

const (
	// KindText: string; a JSON string of 1 to MaxLen characters;
	// varchar(MaxLen) NOT NULL.
	KindText Kind = iota + 1
	// KindOptText: *string, nil when absent or null; a JSON string of 0 to
	// MaxLen characters; varchar(MaxLen).
	KindOptText
	// KindEnum: string; a JSON string from Values (or Rules.Categories);
	// varchar(MaxLen) NOT NULL.
	KindEnum
	// KindTimestamp: time.Time in UTC, microsecond precision; an RFC 3339
	// date-time at most Rules.MaxFutureSkew after acceptance; timestamptz
	// NOT NULL.
	KindTimestamp
	// KindDate: time.Time, a UTC calendar date; "YYYY-MM-DD"; date.
	KindDate
	// KindID: uuid.UUID, uuid.Nil when the record has none (the caller
	// assigns one); a JSON UUID string, not the nil UUID; uuid NOT NULL.
	KindID
	// KindOptUUID: *uuid.UUID; a JSON UUID string or null; uuid.
	KindOptUUID
	// KindOptCount: *int64; a JSON integer >= 0 or null; bigint.
	KindOptCount
	// KindObject: json.RawMessage, compacted; a JSON object of at most
	// Rules.MaxEventDataBytes; jsonb NOT NULL.
	KindObject
	// KindOptAddr: netip.Addr, the zero (invalid) Addr when absent or null;
	// a JSON string of at most MaxLen characters holding an IPv4 or IPv6
	// address without zone; inet. An IPv4-mapped IPv6 address
	// (::ffff:1.2.3.4) is stored as the IPv4 address it maps: it is the
	// same client, as a dual-stack listener reports it. Encoded in
	// netip.Addr's canonical form (RFC 5952 for IPv6).
	KindOptAddr
	// KindFlag: bool; a JSON boolean, absent or null meaning false (the
	// SPEC's default, stored as such: never null); boolean NOT NULL.
	KindFlag
	// KindOptInt: *int32; a JSON integer in [Min, Max] or null; integer.
	KindOptInt
	// KindOptHash: []byte, nil when absent (an empty, non-nil slice is an
	// empty value); a lowercase hex string or null; bytea. The hash
	// chain's hashes: the output of the canonical form
	// (internal/integrity), so never part of it.
	KindOptHash
	// KindOptSmallInt: *int16; a JSON integer or null; smallint.
	KindOptSmallInt
)

// goType is the type of a kind's Event field.
var goType = [...]reflect.Type{
	KindText:        reflect.TypeFor[string](),
	KindOptText:     reflect.TypeFor[*string](),
	KindEnum:        reflect.TypeFor[string](),
	KindTimestamp:   reflect.TypeFor[time.Time](),
	KindDate:        reflect.TypeFor[time.Time](),
	KindID:          reflect.TypeFor[uuid.UUID](),
	KindOptUUID:     reflect.TypeFor[*uuid.UUID](),
	KindOptCount:    reflect.TypeFor[*int64](),
	KindObject:      reflect.TypeFor[json.RawMessage](),
	KindOptHash:     reflect.TypeFor[[]byte](),
	KindOptSmallInt: reflect.TypeFor[*int16](),
	KindOptAddr:     reflect.TypeFor[netip.Addr](),
	KindFlag:        reflect.TypeFor[bool](),
	KindOptInt:      reflect.TypeFor[*int32](),
}

// Required reports whether a record must carry the field: absent or null is
// reported as "required".
func (k Kind) Required() bool {
	return k == KindText || k == KindEnum || k == KindTimestamp || k == KindObject
}

// Source says who sets a field, which decides where it appears.
type Source uint8

const (
	// Request: a member of AuditEventRequest. Parsed and validated from a
	// record (an API request body or a Kafka value), written in the
	// canonical record, copied into its column and returned by reads.
	Request Source = iota
	// Database: computed by PostgreSQL (a generated column); only returned
	// by reads.
	Database
	// Writer: decided by the writer as it stores the record, never taken
	// from a record's value, so a member of that name in a request body or
	// a Kafka value is ignored like any unknown member (submitted_by comes
	// from the record's signed headers, internal/provenance; the hash
	// chain is computed in the batch's transaction, internal/integrity).
	// Copied into its column and returned by reads; not in the Kafka
	// record.
	Writer
)

// Field is one entry of the event's field table.
type Field struct {
	// Name is both the JSON member and the column.
	Name   string
	Kind   Kind
	Source Source
	// MaxLen is the most characters of a KindText, KindOptText or
	// KindOptAddr value, and the varchar size of the text columns and of a
	// KindEnum's.
	MaxLen int
	// Min and Max bound a KindOptInt value.
	Min, Max int32
	// Values is the allowed set of a KindEnum fixed by the SPEC; nil for
	// event_category, whose set is Rules.Categories (configurable).
	Values []string
	// Filter: GET /api/v1/audit/events takes a query parameter of this
	// name that matches the column exactly (an index of the migrations
	// serves it).
	Filter bool

	// offset locates the field in Event. An offset rather than an accessor
	// function because the compiler cannot see through a function value:
	// every Event handed to one would escape to the heap, one more
	// allocation per event on the API's hot path. init checks each offset
	// against the type its kind needs.
	offset uintptr
	// key is `,"name":`, for the encoders.
	key string
}

// eventFields is the single description of the audit event: the parser,
// both encoders, the COPY into audit_events, the queries and the schema
// tests (against the migrated database and the OpenAPI document) all read
// it. Adding a stored field is an Event field, an entry here and a
// migration (and its OpenAPI property).
//
// The order is the SPEC's field table (2.2), which is the order validation
// errors are reported in. Encoders put the record's id first and its
// payload last (see recordOrder).
var eventFields = [...]Field{
	{Name: "version", Kind: KindText, MaxLen: 20, offset: unsafe.Offsetof(Event{}.Version)},
	{Name: "event_type", Kind: KindText, MaxLen: 100, Filter: true, offset: unsafe.Offsetof(Event{}.EventType)},
	{Name: "event_timestamp", Kind: KindTimestamp, offset: unsafe.Offsetof(Event{}.EventTimestamp)},
	{Name: "event_date", Kind: KindDate, Source: Database, offset: unsafe.Offsetof(Event{}.EventDate)},
	{Name: "event_category", Kind: KindEnum, MaxLen: 100, Filter: true, offset: unsafe.Offsetof(Event{}.EventCategory)},
	{Name: "event_action", Kind: KindText, MaxLen: 50, offset: unsafe.Offsetof(Event{}.EventAction)},
	{Name: "event_outcome", Kind: KindEnum, MaxLen: 20, Values: eventOutcomes, Filter: true, offset: unsafe.Offsetof(Event{}.EventOutcome)},
	{Name: "correlation_id", Kind: KindText, MaxLen: 255, Filter: true, offset: unsafe.Offsetof(Event{}.CorrelationID)},
	{Name: "event_data", Kind: KindObject, offset: unsafe.Offsetof(Event{}.EventData)},
	{Name: "actor_type", Kind: KindOptText, MaxLen: 255, offset: unsafe.Offsetof(Event{}.ActorType)},
	{Name: "actor_id", Kind: KindOptText, MaxLen: 255, Filter: true, offset: unsafe.Offsetof(Event{}.ActorID)},
	{Name: "resource_type", Kind: KindOptText, MaxLen: 255, Filter: true, offset: unsafe.Offsetof(Event{}.ResourceType)},
	{Name: "resource_id", Kind: KindOptText, MaxLen: 255, Filter: true, offset: unsafe.Offsetof(Event{}.ResourceID)},
	{Name: "parent_event_id", Kind: KindOptUUID, offset: unsafe.Offsetof(Event{}.ParentEventID)},
	{Name: "namespace", Kind: KindOptText, MaxLen: 255, Filter: true, offset: unsafe.Offsetof(Event{}.Namespace)},
	{Name: "cluster_name", Kind: KindOptText, MaxLen: 255, offset: unsafe.Offsetof(Event{}.ClusterName)},
	{Name: "severity", Kind: KindOptText, MaxLen: 50, Filter: true, offset: unsafe.Offsetof(Event{}.Severity)},
	{Name: "duration_ms", Kind: KindOptCount, offset: unsafe.Offsetof(Event{}.DurationMS)},
	// The fields the seed system added later (SPEC 10), with its limits.
	// 45 characters hold the longest IPv6 text form (an embedded IPv4
	// address in the last 32 bits).
	{Name: "actor_ip", Kind: KindOptAddr, MaxLen: 45, offset: unsafe.Offsetof(Event{}.ActorIP)},
	{Name: "cluster_id", Kind: KindOptText, MaxLen: 255, offset: unsafe.Offsetof(Event{}.ClusterID)},
	{Name: "error_code", Kind: KindOptText, MaxLen: 100, offset: unsafe.Offsetof(Event{}.ErrorCode)},
	{Name: "error_message", Kind: KindOptText, MaxLen: 2000, offset: unsafe.Offsetof(Event{}.ErrorMessage)},
	{Name: "is_sensitive", Kind: KindFlag, offset: unsafe.Offsetof(Event{}.IsSensitive)},
	{Name: "retention_days", Kind: KindOptInt, Min: MinRetentionDays, Max: MaxRetentionDays,
		offset: unsafe.Offsetof(Event{}.RetentionDays)},
	{Name: "event_id", Kind: KindID, offset: unsafe.Offsetof(Event{}.EventID)},
	// MaxLen is provenance.MaxSubmittedBy ("kafka:" and a name of up to 512
	// characters), which a test of that package checks. Null for events
	// stored before identities were recorded (migration 000005).
	{Name: "submitted_by", Kind: KindOptText, Source: Writer, MaxLen: 518, offset: unsafe.Offsetof(Event{}.SubmittedBy)},
	// The hash chain of the event's correlation_id (SPEC 9.1, migration
	// 000006), null for events stored without it (before that migration,
	// or with INTEGRITY_DISABLED). MaxLen of hash_key_id is that of a
	// key id (internal/keyring).
	{Name: "chain_seq", Kind: KindOptCount, Source: Writer, offset: unsafe.Offsetof(Event{}.ChainSeq)},
	{Name: "previous_event_hash", Kind: KindOptHash, Source: Writer, offset: unsafe.Offsetof(Event{}.PreviousEventHash)},
	{Name: "event_hash", Kind: KindOptHash, Source: Writer, offset: unsafe.Offsetof(Event{}.EventHash)},
	{Name: "hash_key_id", Kind: KindOptText, Source: Writer, MaxLen: 64, offset: unsafe.Offsetof(Event{}.HashKeyID)},
	{Name: "hash_version", Kind: KindOptSmallInt, Source: Writer, offset: unsafe.Offsetof(Event{}.HashVersion)},
}

// recordOrder and storedOrder are the fields the encoders write (the Request
// fields for the canonical record, every field for reads), in the order they
// write them: the id first and the payload last, so that a record read by a
// person (kcat, a log line cut short) starts with what identifies it;
// otherwise table order.
var recordOrder, storedOrder []*Field

// requestByLen lists the table indexes of the Request fields by the length
// of their name. The parser compares a member's name with the one to three
// names of its length: as fast as a switch on the name, and about a tenth
// of the parse time less than a map (BenchmarkParseEvent).
var requestByLen [][]uint8

func init() {
	rank := func(f *Field) int {
		switch f.Kind {
		case KindID:
			return 0
		case KindObject:
			return 2
		}
		return 1
	}
	for i := range eventFields {
		f := &eventFields[i]
		if err := f.check(reflectEvent); err != nil {
			panic("audit: field table: " + err.Error())
		}
		f.key = `,"` + f.Name + `":`
		storedOrder = append(storedOrder, f)
		if f.Source == Request {
			recordOrder = append(recordOrder, f)
			for len(requestByLen) <= len(f.Name) {
				requestByLen = append(requestByLen, nil)
			}
			requestByLen[len(f.Name)] = append(requestByLen[len(f.Name)], uint8(i))
		}
	}
	slices.SortStableFunc(recordOrder, func(a, b *Field) int { return rank(a) - rank(b) })
	slices.SortStableFunc(storedOrder, func(a, b *Field) int { return rank(a) - rank(b) })
}

// requestField returns the table index of the Request field named name, or
// -1.
func requestField(name []byte) int {
	if len(name) < len(requestByLen) {
		for _, i := range requestByLen[len(name)] {
			if eventFields[i].Name == string(name) {
				return int(i)
			}
		}
	}
	return -1
}

var reflectEvent = reflect.TypeFor[Event]()

// check verifies that the entry describes a field of event of its kind's type.
func (f *Field) check(event reflect.Type) error {
	if int(f.Kind) >= len(goType) || goType[f.Kind] == nil {
		return fmt.Errorf("%s: unknown kind %d", f.Name, f.Kind)
	}
	for i := range event.NumField() {
		sf := event.Field(i)
		if sf.Offset != f.offset {
			continue
		}
		if sf.Type != goType[f.Kind] {
			return fmt.Errorf("%s: Event.%s is a %s, kind %d needs a %s", f.Name, sf.Name, sf.Type, f.Kind, goType[f.Kind])
		}
		return nil
	}
	return fmt.Errorf("%s: no Event field at offset %d", f.Name, f.offset)
}

// EventFields returns the field table, in table order. The caller may keep
// and reorder the slice; the entries' accessors stay valid.
func EventFields() []Field {
	out := make([]Field, len(eventFields))
	copy(out, eventFields[:])
	return out
}

// FilterError returns the message for a query parameter v that no stored
// value can equal, in the parser's words, or "": a NUL or invalid UTF-8,
// which PostgreSQL text cannot hold (nor compare: the query would fail),
// or a value outside the SPEC's fixed set of an enum. The configured
// categories are not checked: events of a category since removed from the
// settings are still stored.
func (f *Field) FilterError(v string) string {
	if strings.IndexByte(v, 0) >= 0 {
		return msgNUL
	}
	if !utf8.ValidString(v) {
		return msgUTF8
	}
	if f.Kind == KindEnum && f.Values != nil && !slices.Contains(f.Values, v) {
		return msgEnum(f.Values)
	}
	return ""
}

// The accessors return a pointer to the field in e. Each may only be used
// for the kinds its type serves (a switch on Kind); anything else panics
// rather than reading another field's memory.

// Str serves KindText and KindEnum.
func (f *Field) Str(e *Event) *string { return at[string](f, e, KindText, KindEnum) }

// OptStr serves KindOptText.
func (f *Field) OptStr(e *Event) **string { return at[*string](f, e, KindOptText, KindOptText) }

// Time serves KindTimestamp and KindDate.
func (f *Field) Time(e *Event) *time.Time { return at[time.Time](f, e, KindTimestamp, KindDate) }

// UUID serves KindID.
func (f *Field) UUID(e *Event) *uuid.UUID { return at[uuid.UUID](f, e, KindID, KindID) }

// OptUUID serves KindOptUUID.
func (f *Field) OptUUID(e *Event) **uuid.UUID { return at[*uuid.UUID](f, e, KindOptUUID, KindOptUUID) }

// OptInt serves KindOptCount.
func (f *Field) OptInt(e *Event) **int64 { return at[*int64](f, e, KindOptCount, KindOptCount) }

// Addr serves KindOptAddr.
func (f *Field) Addr(e *Event) *netip.Addr { return at[netip.Addr](f, e, KindOptAddr, KindOptAddr) }

// Flag serves KindFlag.
func (f *Field) Flag(e *Event) *bool { return at[bool](f, e, KindFlag, KindFlag) }

// OptInt32 serves KindOptInt.
func (f *Field) OptInt32(e *Event) **int32 { return at[*int32](f, e, KindOptInt, KindOptInt) }

// Bytes serves KindOptHash.
func (f *Field) Bytes(e *Event) *[]byte { return at[[]byte](f, e, KindOptHash, KindOptHash) }

// OptSmallInt serves KindOptSmallInt.
func (f *Field) OptSmallInt(e *Event) **int16 {
	return at[*int16](f, e, KindOptSmallInt, KindOptSmallInt)
}

// Raw serves KindObject.
func (f *Field) Raw(e *Event) *json.RawMessage {
	return at[json.RawMessage](f, e, KindObject, KindObject)
}

func at[T any](f *Field, e *Event, k1, k2 Kind) *T {
	if f.Kind != k1 && f.Kind != k2 {
		panic("audit: " + f.Name + ": accessor of another kind")
	}
	return (*T)(unsafe.Add(unsafe.Pointer(e), f.offset))
}
