package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

var acceptedAt = time.Date(2025, 12, 13, 3, 0, 0, 0, time.UTC)

const absent = "<absent>"

type member struct{ key, raw string }

var baseEvent = []member{
	{"version", `"1.0"`},
	{"event_type", `"gateway.signal.received"`},
	{"event_timestamp", `"2025-12-13T02:00:00Z"`},
	{"event_category", `"gateway"`},
	{"event_action", `"received"`},
	{"event_outcome", `"success"`},
	{"correlation_id", `"rr-2025-001"`},
	{"event_data", `{"k":"v"}`},
}

var baseNotification = []member{
	{"remediation_id", `"remediation-123"`},
	{"notification_id", `"notification-456"`},
	{"recipient", `"ops-team@example.com"`},
	{"channel", `"email"`},
	{"message_summary", `"Incident alert"`},
	{"status", `"sent"`},
	{"sent_at", `"2025-11-03T12:00Z"`},
}

// object builds a JSON object from base with field overridden by raw (raw
// JSON text, inserted verbatim; absent removes the field).
func object(base []member, field, raw string) string {
	var b strings.Builder
	b.WriteByte('{')
	found := false
	first := true
	write := func(k, v string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`"` + k + `":` + v)
	}
	for _, m := range base {
		if m.key == field {
			found = true
			if raw != absent {
				write(m.key, raw)
			}
			continue
		}
		write(m.key, m.raw)
	}
	if !found && raw != absent && field != "" {
		write(field, raw)
	}
	b.WriteByte('}')
	return b.String()
}

func fe(field, reason, msg string) FieldError {
	return FieldError{Field: field, Reason: reason, Message: msg}
}

type fieldCase struct {
	name  string
	field string
	raw   string
	want  FieldError // zero: accepted
}

// stringCases covers a string field with a length limit.
func stringCases(field string, required bool, maxLen int) []fieldCase {
	cs := []fieldCase{
		{"wrong type number", field, `123`, fe(field, ReasonType, msgString)},
		{"wrong type object", field, `{"a":1}`, fe(field, ReasonType, msgString)},
		{"wrong type bool", field, `true`, fe(field, ReasonType, msgString)},
		{"too long", field, `"` + strings.Repeat("a", maxLen+1) + `"`, fe(field, ReasonTooLong, fmt.Sprintf("must be at most %d characters", maxLen))},
		{"too long multibyte", field, `"` + strings.Repeat("é", maxLen+1) + `"`, fe(field, ReasonTooLong, fmt.Sprintf("must be at most %d characters", maxLen))},
		{"exact max multibyte", field, `"` + strings.Repeat("é", maxLen) + `"`, FieldError{}},
		{"exact max 4-byte", field, `"` + strings.Repeat("😀", maxLen) + `"`, FieldError{}},
		{"exact max escaped", field, `"` + strings.Repeat(`\u00e9`, maxLen) + `"`, FieldError{}},
		{"NUL escape", field, `"a\u0000b"`, fe(field, ReasonNUL, msgNUL)},
		{"invalid UTF-8", field, "\"a\xffb\"", fe(field, ReasonUTF8, msgUTF8)},
		{"lone high surrogate", field, `"\ud800"`, fe(field, ReasonUTF8, msgSurrogate)},
		{"lone low surrogate", field, `"x\udc00y"`, fe(field, ReasonUTF8, msgSurrogate)},
		{"high surrogate then non-low", field, `"\ud800\u0041"`, fe(field, ReasonUTF8, msgSurrogate)},
		{"surrogate pair ok", field, `"\ud83d\ude00"`, FieldError{}},
		{"escaped backslash then u0000 text", field, `"\\u0000"`, FieldError{}},
	}
	if required {
		cs = append(cs,
			fieldCase{"missing", field, absent, fe(field, ReasonRequired, msgRequired)},
			fieldCase{"null", field, `null`, fe(field, ReasonRequired, msgRequired)},
			fieldCase{"empty", field, `""`, fe(field, ReasonEmpty, msgEmpty)},
		)
	} else {
		cs = append(cs,
			fieldCase{"missing", field, absent, FieldError{}},
			fieldCase{"null", field, `null`, FieldError{}},
			fieldCase{"empty", field, `""`, FieldError{}},
		)
	}
	return cs
}

func enumCases(field string, allowed []string) []fieldCase {
	msg := "must be one of: " + strings.Join(allowed, ", ")
	cs := []fieldCase{
		{"missing", field, absent, fe(field, ReasonRequired, msgRequired)},
		{"null", field, `null`, fe(field, ReasonRequired, msgRequired)},
		{"empty", field, `""`, fe(field, ReasonEnum, msg)},
		{"bad enum", field, `"bogus"`, fe(field, ReasonEnum, msg)},
		{"case matters", field, `"` + strings.ToUpper(allowed[0]) + `"`, fe(field, ReasonEnum, msg)},
		{"wrong type", field, `1`, fe(field, ReasonType, msgString)},
		{"NUL escape", field, `"a\u0000"`, fe(field, ReasonNUL, msgNUL)},
		{"invalid UTF-8", field, "\"\xff\"", fe(field, ReasonUTF8, msgUTF8)},
	}
	for _, a := range allowed {
		cs = append(cs, fieldCase{"allowed " + a, field, `"` + a + `"`, FieldError{}})
	}
	return cs
}

func dateTimeCases(field string, required, future bool) []fieldCase {
	cs := []fieldCase{
		{"wrong type", field, `1734055200`, fe(field, ReasonType, msgString)},
		{"empty", field, `""`, fe(field, ReasonFormat, msgDateTime)},
		{"date only", field, `"2025-12-13"`, fe(field, ReasonFormat, msgDateTime)},
		{"no offset", field, `"2025-12-13T02:00:00"`, fe(field, ReasonFormat, msgDateTime)},
		{"space separator", field, `"2025-12-13 02:00:00Z"`, fe(field, ReasonFormat, msgDateTime)},
		{"comma fraction", field, `"2025-12-13T02:00:00,5Z"`, fe(field, ReasonFormat, msgDateTime)},
		{"offset without colon", field, `"2025-12-13T02:00:00+0530"`, fe(field, ReasonFormat, msgDateTime)},
		{"bad month", field, `"2025-13-13T02:00:00Z"`, fe(field, ReasonFormat, msgDateTime)},
		{"hour 24", field, `"2025-12-13T24:00:00Z"`, fe(field, ReasonFormat, msgDateTime)},
		{"offset +24:00", field, `"2025-12-13T02:00:00+24:00"`, fe(field, ReasonFormat, msgDateTime)},
		{"offset -24:00", field, `"2025-12-12T02:00:00-24:00"`, fe(field, ReasonFormat, msgDateTime)},
		{"offset minutes 60", field, `"2025-12-13T02:00:00+01:60"`, fe(field, ReasonFormat, msgDateTime)},
		{"seconds-less offset +24:00", field, `"2025-12-13T02:00+24:00"`, fe(field, ReasonFormat, msgDateTime)},
		{"offset +23:59", field, `"2025-12-13T02:00:00+23:59"`, FieldError{}},
		{"offset -23:59", field, `"2025-12-12T02:00:00-23:59"`, FieldError{}},
		{"leap second", field, `"2016-12-31T23:59:60Z"`, FieldError{}},
		{"leap second with fraction", field, `"2016-12-31T23:59:60.5Z"`, FieldError{}},
		{"leap second in an offset", field, `"2016-12-31T15:59:60-08:00"`, FieldError{}},
		{"leap second at the end of June", field, `"2015-06-30T23:59:60Z"`, FieldError{}},
		{"second 60 not at 23:59 UTC", field, `"2016-12-31T23:59:60+01:00"`, fe(field, ReasonFormat, msgDateTime)},
		{"second 60 not at the end of a month", field, `"2016-12-30T23:59:60Z"`, fe(field, ReasonFormat, msgDateTime)},
		{"second 61", field, `"2016-12-31T23:59:61Z"`, fe(field, ReasonFormat, msgDateTime)},
		{"garbage", field, `"yesterday"`, fe(field, ReasonFormat, msgDateTime)},
		{"year 0", field, `"0000-06-01T00:00:00Z"`, fe(field, ReasonRange, msgYearRange)},
		{"UTC year 10000", field, `"9999-12-31T23:30:00-01:00"`, fe(field, ReasonRange, msgYearRange)},
		{"NUL escape", field, `"2025-12-13T02:00:00Z\u0000"`, fe(field, ReasonNUL, msgNUL)},
		{"invalid UTF-8", field, "\"2025-12-13T02:00:00Z\xff\"", fe(field, ReasonUTF8, msgUTF8)},
		{"seconds-less", field, `"2025-12-13T02:00Z"`, FieldError{}},
		{"seconds-less offset", field, `"2025-12-13T02:00+05:30"`, FieldError{}},
		{"fraction offset", field, `"2025-12-13T02:00:00.123+05:30"`, FieldError{}},
		{"nanoseconds", field, `"2025-12-13T02:00:00.123456789Z"`, FieldError{}},
		{"lower-case t z", field, `"2025-12-13t02:00:00z"`, FieldError{}},
		{"old backfill", field, `"1999-01-01T00:00:00Z"`, FieldError{}},
		{"year 0001", field, `"0001-01-01T00:00:00Z"`, FieldError{}},
	}
	if required {
		cs = append(cs,
			fieldCase{"missing", field, absent, fe(field, ReasonRequired, msgRequired)},
			fieldCase{"null", field, `null`, fe(field, ReasonRequired, msgRequired)},
		)
	} else {
		cs = append(cs,
			fieldCase{"missing", field, absent, FieldError{}},
			fieldCase{"null", field, `null`, FieldError{}},
		)
	}
	if future {
		cs = append(cs,
			fieldCase{"future", field, `"2025-12-13T03:05:00.000001Z"`, fe(field, ReasonFuture, "must not be more than 5m0s in the future")},
			fieldCase{"future via offset", field, `"2025-12-13T04:06:00+01:00"`, fe(field, ReasonFuture, "must not be more than 5m0s in the future")},
			fieldCase{"exactly at skew limit", field, `"2025-12-13T03:05:00Z"`, FieldError{}},
			fieldCase{"offset makes it past", field, `"2025-12-13T04:04:00+01:00"`, FieldError{}},
		)
	}
	return cs
}

func uuidCases(field string) []fieldCase {
	return []fieldCase{
		{"missing", field, absent, FieldError{}},
		{"null", field, `null`, FieldError{}},
		{"valid", field, `"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"`, FieldError{}},
		{"upper case", field, `"0190B1A2-7C3D-7E4F-8A5B-6C7D8E9F0A1B"`, FieldError{}},
		{"wrong type", field, `12`, fe(field, ReasonType, msgString)},
		{"empty", field, `""`, fe(field, ReasonFormat, msgUUID)},
		{"not a uuid", field, `"parent_event_id_example"`, fe(field, ReasonFormat, msgUUID)},
		{"braces form", field, `"{0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b}"`, fe(field, ReasonFormat, msgUUID)},
		{"no hyphens", field, `"0190b1a27c3d7e4f8a5b6c7d8e9f0a1b"`, fe(field, ReasonFormat, msgUUID)},
		{"bad hex", field, `"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1z"`, fe(field, ReasonFormat, msgUUID)},
		{"NUL escape", field, `"\u0000"`, fe(field, ReasonNUL, msgNUL)},
		{"invalid UTF-8", field, "\"\xff\"", fe(field, ReasonUTF8, msgUTF8)},
	}
}

func intCases(field string, typeMsg string, lo, hi int64, rangeMsg, bigMsg string) []fieldCase {
	return []fieldCase{
		{"missing", field, absent, FieldError{}},
		{"null", field, `null`, FieldError{}},
		{"low edge", field, fmt.Sprint(lo), FieldError{}},
		{"high edge", field, fmt.Sprint(hi), FieldError{}},
		{"below", field, fmt.Sprint(lo - 1), fe(field, ReasonRange, rangeMsg)},
		{"negative", field, `-7`, fe(field, ReasonRange, rangeMsg)},
		{"fraction", field, `1.5`, fe(field, ReasonType, typeMsg)},
		{"integral fraction", field, `1.0`, fe(field, ReasonType, typeMsg)},
		{"exponent", field, `1e3`, fe(field, ReasonType, typeMsg)},
		{"string", field, `"5"`, fe(field, ReasonType, typeMsg)},
		{"bool", field, `true`, fe(field, ReasonType, typeMsg)},
		{"huge", field, `99999999999999999999999`, fe(field, ReasonRange, bigMsg)},
		{"huge negative", field, `-99999999999999999999999`, fe(field, ReasonRange, rangeMsg)},
	}
}

func eventFieldCases() []fieldCase {
	var cs []fieldCase
	cs = append(cs, stringCases("version", true, 20)...)
	cs = append(cs, stringCases("event_type", true, 100)...)
	cs = append(cs, dateTimeCases("event_timestamp", true, true)...)
	cs = append(cs, enumCases("event_category", DefaultCategories())...)
	cs = append(cs, stringCases("event_action", true, 50)...)
	cs = append(cs, enumCases("event_outcome", []string{"success", "failure", "pending"})...)
	cs = append(cs, stringCases("correlation_id", true, 255)...)
	for _, f := range []string{"actor_type", "actor_id", "resource_type", "resource_id", "namespace", "cluster_name"} {
		cs = append(cs, stringCases(f, false, 255)...)
	}
	cs = append(cs, stringCases("severity", false, 50)...)
	cs = append(cs, uuidCases("parent_event_id")...)
	cs = append(cs, uuidCases("event_id")...)
	cs = append(cs, fieldCase{"nil uuid", "event_id", `"00000000-0000-0000-0000-000000000000"`, fe("event_id", ReasonFormat, msgNilUUID)})
	cs = append(cs, intCases("duration_ms", msgIntNonNeg, 0, 1<<63-1, msgIntNonNeg, "must be at most 9223372036854775807")...)
	cs = append(cs, newerFieldCases()...)
	const ed = "event_data"
	cs = append(cs,
		fieldCase{"missing", ed, absent, fe(ed, ReasonRequired, msgRequired)},
		fieldCase{"null", ed, `null`, fe(ed, ReasonRequired, msgRequired)},
		fieldCase{"empty object", ed, `{}`, FieldError{}},
		fieldCase{"array", ed, `[1]`, fe(ed, ReasonType, msgObject)},
		fieldCase{"string", ed, `"{}"`, fe(ed, ReasonType, msgObject)},
		fieldCase{"number", ed, `1`, fe(ed, ReasonType, msgObject)},
		fieldCase{"NUL in value", ed, `{"a":"x\u0000"}`, fe(ed, ReasonNUL, msgNUL)},
		fieldCase{"NUL in key", ed, `{"\u0000":1}`, fe(ed, ReasonNUL, msgNUL)},
		fieldCase{"NUL deep", ed, `{"a":[{"b":{"c":["ok","\u0000"]}}]}`, fe(ed, ReasonNUL, msgNUL)},
		fieldCase{"escaped backslash u0000 text", ed, `{"a":"\\u0000","b":"\\\\u0000"}`, FieldError{}},
		fieldCase{"invalid UTF-8 value", ed, "{\"a\":\"\xff\"}", fe(ed, ReasonUTF8, msgUTF8)},
		fieldCase{"invalid UTF-8 key", ed, "{\"\xc3\":1}", fe(ed, ReasonUTF8, msgUTF8)},
		fieldCase{"UTF-8 encoded surrogate", ed, "{\"a\":\"\xed\xa0\x80\"}", fe(ed, ReasonUTF8, msgUTF8)},
		fieldCase{"lone surrogate", ed, `{"a":"\ud800"}`, fe(ed, ReasonUTF8, msgSurrogate)},
		fieldCase{"lone surrogate in key", ed, `{"\udfff":1}`, fe(ed, ReasonUTF8, msgSurrogate)},
		fieldCase{"surrogate pair", ed, `{"a":"\ud83d\ude00"}`, FieldError{}},
		fieldCase{"number beyond numeric", ed, `{"a":1e200000}`, fe(ed, ReasonRange, msgNumberRange)},
		fieldCase{"number beyond numeric deep", ed, `{"a":[{"b":[0,-1.5e131072]}]}`, fe(ed, ReasonRange, msgNumberRange)},
		fieldCase{"number in a string is text", ed, `{"a":"1e200000"}`, FieldError{}},
		fieldCase{"large number numeric holds", ed, `{"a":9.9e131071,"b":1e-16383}`, FieldError{}},
		fieldCase{"too large", ed, `{"a":"` + strings.Repeat("x", 64<<10) + `"}`, fe(ed, ReasonTooLarge, "must be at most 65536 bytes when serialized")},
		fieldCase{"at limit", ed, `{"a":"` + strings.Repeat("x", 64<<10-8) + `"}`, FieldError{}},
		fieldCase{"whitespace does not count", ed, `{"a":    "` + strings.Repeat("x", 64<<10-8) + `"   }`, FieldError{}},
	)
	return cs
}

// newerFieldCases are the fields of SPEC 10, with the bad input.
func newerFieldCases() []fieldCase {
	const ip, rd, sens = "actor_ip", "retention_days", "is_sensitive"
	cs := []fieldCase{
		{"missing", ip, absent, FieldError{}},
		{"null", ip, `null`, FieldError{}},
		{"IPv4", ip, `"192.0.2.10"`, FieldError{}},
		{"IPv6", ip, `"2001:db8::10"`, FieldError{}},
		{"IPv6 upper case, uncompressed", ip, `"2001:0DB8:0:0:0:0:0:10"`, FieldError{}},
		{"IPv4-mapped IPv6", ip, `"::ffff:1.2.3.4"`, FieldError{}},
		{"longest IPv6 form", ip, `"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"`, FieldError{}},
		{"octet out of range", ip, `"999.1.1.1"`, fe(ip, ReasonFormat, msgAddr)},
		{"46 characters", ip, `"` + strings.Repeat("1", 46) + `"`, fe(ip, ReasonTooLong, "must be at most 45 characters")},
		{"46-character address form", ip, `"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555"`, fe(ip, ReasonTooLong, "must be at most 45 characters")},
		{"empty", ip, `""`, fe(ip, ReasonFormat, msgAddr)},
		{"host name", ip, `"gateway.local"`, fe(ip, ReasonFormat, msgAddr)},
		{"network", ip, `"10.0.0.0/8"`, fe(ip, ReasonFormat, msgAddr)},
		{"zone", ip, `"fe80::1%eth0"`, fe(ip, ReasonFormat, msgAddr)},
		{"leading zero", ip, `"010.1.1.1"`, fe(ip, ReasonFormat, msgAddr)},
		{"with port", ip, `"192.0.2.10:443"`, fe(ip, ReasonFormat, msgAddr)},
		{"wrong type", ip, `3221225994`, fe(ip, ReasonType, msgString)},
		{"NUL escape", ip, `"1.2.3.4\u0000"`, fe(ip, ReasonNUL, msgNUL)},

		{"missing", sens, absent, FieldError{}},
		{"null", sens, `null`, FieldError{}},
		{"true", sens, `true`, FieldError{}},
		{"false", sens, `false`, FieldError{}},
		{"string", sens, `"true"`, fe(sens, ReasonType, msgBool)},
		{"number", sens, `1`, fe(sens, ReasonType, msgBool)},
	}
	cs = append(cs, stringCases("cluster_id", false, 255)...)
	cs = append(cs, stringCases("error_code", false, 100)...)
	cs = append(cs, stringCases("error_message", false, 2000)...)
	const msg = "must be an integer between 1 and 2555"
	cs = append(cs, intCases(rd, msg, 1, 2555, msg, msg)...)
	cs = append(cs,
		fieldCase{"zero", rd, `0`, fe(rd, ReasonRange, msg)},
		fieldCase{"past seven years", rd, `2556`, fe(rd, ReasonRange, msg)},
		fieldCase{"a string of digits", rd, `"7"`, fe(rd, ReasonType, msg)},
	)
	return cs
}

func TestParseEventNewerFieldValues(t *testing.T) {
	tests := []struct {
		name, in string
		want     Event // only the newer fields
		record   string
	}{
		{"absent", `{}`, Event{}, ``},
		{"IPv4-mapped IPv6 becomes IPv4", `{"actor_ip":"::ffff:1.2.3.4"}`,
			Event{ActorIP: netip.MustParseAddr("1.2.3.4")}, `"actor_ip":"1.2.3.4"`},
		{"IPv6 in canonical form", `{"actor_ip":"2001:0DB8:0:0:0:0:0:10"}`,
			Event{ActorIP: netip.MustParseAddr("2001:db8::10")}, `"actor_ip":"2001:db8::10"`},
		{"sensitive", `{"is_sensitive":true}`, Event{IsSensitive: true}, `"is_sensitive":true`},
		{"not sensitive is the default, left out", `{"is_sensitive":false}`, Event{}, ``},
		{"retention", `{"retention_days":365}`, Event{RetentionDays: new(int32(365))}, `"retention_days":365`},
		{"errors and cluster", `{"cluster_id":"c-1","error_code":"E42","error_message":"disk full"}`,
			Event{ClusterID: new("c-1"), ErrorCode: new("E42"), ErrorMessage: new("disk full")},
			`"cluster_id":"c-1","error_code":"E42","error_message":"disk full"`},
	}
	r := DefaultRules()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var over []member
			for k, v := range map[string]json.RawMessage(mustUnmarshal(t, tc.in)) {
				over = append(over, member{k, string(v)})
			}
			ev, err := r.ParseEvent([]byte(object(append(slices.Clone(baseEvent), over...), "", "")), acceptedAt)
			require.NoError(t, err)
			got := Event{ActorIP: ev.ActorIP, ClusterID: ev.ClusterID, ErrorCode: ev.ErrorCode, ErrorMessage: ev.ErrorMessage,
				IsSensitive: ev.IsSensitive, RetentionDays: ev.RetentionDays}
			require.Equal(t, tc.want, got)
			out := string(ev.AppendJSON(nil))
			if tc.record != "" {
				require.Contains(t, out, tc.record)
			}
			again, err := r.ParseEvent([]byte(out), acceptedAt)
			require.NoError(t, err)
			require.Equal(t, ev, again, "the record parses back to the same event")
		})
	}
}

func mustUnmarshal(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(s), &m))
	return m
}

// TestReservedCategory: auditstream is refused unless the rules accept
// the system's category (the writer's), and cannot be configured.
func TestReservedCategory(t *testing.T) {
	raw := []byte(object(baseEvent, "event_category", `"auditstream"`))
	r := DefaultRules()
	_, err := r.ParseEvent(raw, acceptedAt)
	var fes FieldErrors
	require.ErrorAs(t, err, &fes)
	require.Equal(t, FieldErrors{fe("event_category", ReasonReserved, msgReserved)}, fes)

	r.AcceptSystemCategory = true
	ev, err := r.ParseEvent(raw, acceptedAt)
	require.NoError(t, err)
	require.Equal(t, SystemCategory, ev.EventCategory)

	r = DefaultRules()
	r.Categories = append(r.Categories, SystemCategory)
	require.ErrorContains(t, r.Validate(), "reserved")
}

func TestParseEventFields(t *testing.T) {
	r := DefaultRules()
	for _, tc := range eventFieldCases() {
		t.Run(tc.field+"/"+tc.name, func(t *testing.T) {
			raw := object(baseEvent, tc.field, tc.raw)
			ev, err := r.ParseEvent([]byte(raw), acceptedAt)
			if tc.want == (FieldError{}) {
				require.NoError(t, err)
				require.NotEmpty(t, ev.EventData)
				return
			}
			var fes FieldErrors
			require.True(t, errors.As(err, &fes), "want FieldErrors, got %v", err)
			require.Equal(t, FieldErrors{tc.want}, fes)
			require.Equal(t, Event{}, ev)
		})
	}
}

func TestParseEventValues(t *testing.T) {
	r := DefaultRules()
	raw := `{
		"event_id": "0190B1A2-7C3D-7E4F-8A5B-6C7D8E9F0A1B",
		"version": "1.0", "event_type": "gateway.signal.received",
		"event_timestamp": "2025-12-13T02:00:00.1234567+05:30",
		"event_category": "gateway", "event_action": "received", "event_outcome": "success",
		"actor_type": "service", "actor_id": "gateway-service", "resource_type": "Signal",
		"resource_id": "fp-abc123", "correlation_id": "rr-2025-001",
		"parent_event_id": "0190b1a2-7c3d-7e4f-8a5b-000000000001",
		"namespace": null, "cluster_name": "c\u00e9\/1", "severity": "", "duration_ms": 5,
		"unknown": {"nested": [1, 2, "\\u0000"]},
		"event_data": { "b" : [1, 2.5e10, true, null], "a": "x y\n" }
	}`
	ev, err := r.ParseEvent([]byte(raw), acceptedAt)
	require.NoError(t, err)
	require.Equal(t, uuid.MustParse("0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"), ev.EventID)
	require.Equal(t, time.Date(2025, 12, 12, 20, 30, 0, 123456000, time.UTC), ev.EventTimestamp)
	require.Equal(t, time.UTC, ev.EventTimestamp.Location())
	require.Equal(t, "2025-12-12", ev.EventTimestamp.Format(time.DateOnly), "the UTC date, not the offset's")
	require.Nil(t, ev.Namespace)
	require.Equal(t, "cé/1", *ev.ClusterName)
	require.Equal(t, "", *ev.Severity)
	require.Equal(t, int64(5), *ev.DurationMS)
	require.Equal(t, "service", *ev.ActorType)
	require.Equal(t, uuid.MustParse("0190b1a2-7c3d-7e4f-8a5b-000000000001"), *ev.ParentEventID)
	require.JSONEq(t, `{"b":[1,2.5e10,true,null],"a":"x y\n"}`, string(ev.EventData))
	require.Equal(t, `{"b":[1,2.5e10,true,null],"a":"x y\n"}`, string(ev.EventData), "compacted, order and number text kept")

	out, err := ev.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `{"event_id":"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b","version":"1.0","event_type":"gateway.signal.received",`+
		`"event_timestamp":"2025-12-12T20:30:00.123456Z","event_category":"gateway","event_action":"received","event_outcome":"success",`+
		`"correlation_id":"rr-2025-001","actor_type":"service","actor_id":"gateway-service","resource_type":"Signal","resource_id":"fp-abc123",`+
		`"parent_event_id":"0190b1a2-7c3d-7e4f-8a5b-000000000001","cluster_name":"cé/1","severity":"","duration_ms":5,`+
		`"event_data":{"b":[1,2.5e10,true,null],"a":"x y\n"}}`, string(out))
	require.True(t, json.Valid(out))

	// json.Marshal goes through MarshalJSON too.
	viaStd, err := json.Marshal(ev)
	require.NoError(t, err)
	require.Equal(t, out, viaStd)
}

func TestParseEventMinimal(t *testing.T) {
	ev, err := DefaultRules().ParseEvent([]byte(object(baseEvent, "", "")), acceptedAt)
	require.NoError(t, err)
	require.Equal(t, Event{
		Version: "1.0", EventType: "gateway.signal.received",
		EventTimestamp: time.Date(2025, 12, 13, 2, 0, 0, 0, time.UTC),
		EventCategory:  "gateway", EventAction: "received", EventOutcome: "success",
		CorrelationID: "rr-2025-001", EventData: json.RawMessage(`{"k":"v"}`),
	}, ev)
	out, _ := ev.MarshalJSON()
	require.Equal(t, `{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2025-12-13T02:00:00Z",`+
		`"event_category":"gateway","event_action":"received","event_outcome":"success","correlation_id":"rr-2025-001","event_data":{"k":"v"}}`, string(out))
}

func TestParseEventAllErrorsReported(t *testing.T) {
	raw := `{"version":"","event_type":1,"event_timestamp":"2099-01-01T00:00:00Z","event_category":"nope",
		"event_outcome":"maybe","correlation_id":null,"event_data":[],"severity":"` + strings.Repeat("s", 51) + `",
		"duration_ms":-1,"parent_event_id":"x","event_id":"y"}`
	_, err := DefaultRules().ParseEvent([]byte(raw), acceptedAt)
	var fes FieldErrors
	require.ErrorAs(t, err, &fes)
	require.Equal(t, FieldErrors{
		fe("version", ReasonEmpty, msgEmpty),
		fe("event_type", ReasonType, msgString),
		fe("event_timestamp", ReasonFuture, "must not be more than 5m0s in the future"),
		fe("event_category", ReasonEnum, "must be one of: gateway, notification, analysis, signalprocessing, workflow, execution, orchestration"),
		fe("event_action", ReasonRequired, msgRequired),
		fe("event_outcome", ReasonEnum, "must be one of: success, failure, pending"),
		fe("correlation_id", ReasonRequired, msgRequired),
		fe("event_data", ReasonType, msgObject),
		fe("parent_event_id", ReasonFormat, msgUUID),
		fe("severity", ReasonTooLong, "must be at most 50 characters"),
		fe("duration_ms", ReasonRange, msgIntNonNeg),
		fe("event_id", ReasonFormat, msgUUID),
	}, fes)
	require.Equal(t, "must be one of: success, failure, pending", fes.Map()["event_outcome"])
	require.Len(t, fes.Map(), 12)
	require.Contains(t, err.Error(), "version: must not be empty; event_type: must be a string")
}

func TestParseEventRulesConfigurable(t *testing.T) {
	r := Rules{MaxFutureSkew: time.Hour, Categories: []string{"custom"}, MaxEventDataBytes: 10}
	require.NoError(t, r.Validate())
	raw := object(object2(baseEvent, map[string]string{
		"event_category":  `"custom"`,
		"event_timestamp": `"2025-12-13T03:59:00Z"`,
	}), "event_data", `{"a":1}`)
	_, err := r.ParseEvent([]byte(raw), acceptedAt)
	require.NoError(t, err)

	raw = object(baseEvent, "event_data", `{"a":"0123456789"}`)
	_, err = r.ParseEvent([]byte(raw), acceptedAt)
	var fes FieldErrors
	require.ErrorAs(t, err, &fes)
	require.Equal(t, FieldErrors{
		fe("event_category", ReasonEnum, "must be one of: custom"),
		fe("event_data", ReasonTooLarge, "must be at most 10 bytes when serialized"),
	}, fes)
}

// object2 applies several overrides.
func object2(base []member, over map[string]string) []member {
	out := make([]member, 0, len(base))
	for _, m := range base {
		if v, ok := over[m.key]; ok {
			m.raw = v
		}
		out = append(out, m)
	}
	return out
}

func TestParseEventDuplicateKeys(t *testing.T) {
	r := DefaultRules()
	raw := `{"version":"first",` + object(baseEvent, "", "")[1:]
	ev, err := r.ParseEvent([]byte(raw), acceptedAt)
	require.NoError(t, err)
	require.Equal(t, "1.0", ev.Version, "last occurrence wins")

	// The overwritten occurrence must still be clean.
	raw = `{"version":"a\u0000",` + object(baseEvent, "", "")[1:]
	_, err = r.ParseEvent([]byte(raw), acceptedAt)
	require.ErrorIs(t, err, ErrNUL)
}

func TestParseEventEscapedKeys(t *testing.T) {
	raw := strings.Replace(object(baseEvent, "", ""), `"version"`, `"vers\u0069on"`, 1)
	ev, err := DefaultRules().ParseEvent([]byte(raw), acceptedAt)
	require.NoError(t, err)
	require.Equal(t, "1.0", ev.Version)

	// Matching is exact: a differently cased key is an unknown field.
	raw = strings.Replace(object(baseEvent, "", ""), `"version"`, `"Version"`, 1)
	_, err = DefaultRules().ParseEvent([]byte(raw), acceptedAt)
	var fes FieldErrors
	require.ErrorAs(t, err, &fes)
	require.Equal(t, FieldErrors{fe("version", ReasonRequired, msgRequired)}, fes)
}

func TestParseEventBodyErrors(t *testing.T) {
	valid := object(baseEvent, "", "")
	cases := []struct {
		name     string
		raw      string
		sentinel error
		reason   string
		detail   string
	}{
		{"empty body", "", ErrMalformed, "malformed", "body is empty; a JSON document is required"},
		{"whitespace body", " \n", ErrMalformed, "malformed", "body is empty; a JSON document is required"},
		{"truncated", valid[:len(valid)-3], ErrMalformed, "malformed", "body is not valid JSON: unexpected end of JSON input"},
		{"garbage", "{version:1}", ErrMalformed, "malformed", "body is not valid JSON: invalid character 'v' looking for beginning of object key string (at byte offset 2)"},
		{"trailing data", valid + "{}", ErrMalformed, "malformed", "body is not valid JSON: invalid character '{' after top-level value"},
		{"raw NUL byte", strings.Replace(valid, "1.0", "1\x000", 1), ErrMalformed, "malformed", "body is not valid JSON: invalid character '\\x00' in string literal"},
		{"array", "[" + valid + "]", ErrNotObject, "not_object", "body must be a JSON object, got an array"},
		{"string", `"x"`, ErrNotObject, "not_object", "body must be a JSON object, got a string"},
		{"null", `null`, ErrNotObject, "not_object", "body must be a JSON object, got null"},
		{"number", ` 12`, ErrNotObject, "not_object", "body must be a JSON object, got a number"},
		{"invalid UTF-8 in unknown value", object(baseEvent, "extra", "\"\xff\""), ErrInvalidUTF8, "utf8", `field "extra" is not valid UTF-8`},
		{"invalid UTF-8 in unknown nested", object(baseEvent, "extra", "{\"a\":[\"\xfe\"]}"), ErrInvalidUTF8, "utf8", `field "extra" is not valid UTF-8`},
		{"invalid UTF-8 in key", object(baseEvent, "ex\xfftra", `1`), ErrInvalidUTF8, "utf8", "a field name is not valid UTF-8"},
		{"NUL in unknown value", object(baseEvent, "extra", `"\u0000"`), ErrNUL, "nul", `field "extra" contains a NUL character (\u0000)`},
		{"NUL in key", object(baseEvent, `ex\u0000tra`, `1`), ErrNUL, "nul", `a field name contains a NUL character (\u0000)`},
		{"surrogate in unknown value", object(baseEvent, "extra", `"\udbff"`), ErrInvalidUTF8, "utf8", `field "extra" contains an unpaired UTF-16 surrogate escape`},
		{"surrogate in key", object(baseEvent, `\ud800`, `1`), ErrInvalidUTF8, "utf8", "a field name contains an unpaired UTF-16 surrogate escape"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DefaultRules().ParseEvent([]byte(tc.raw), acceptedAt)
			require.ErrorIs(t, err, tc.sentinel)
			var be *BodyError
			require.ErrorAs(t, err, &be)
			require.Equal(t, tc.reason, be.Reason())
			require.True(t, strings.HasPrefix(be.Detail, tc.detail), "detail %q", be.Detail)
		})
	}
}

func TestParseEventUnknownFieldsIgnored(t *testing.T) {
	raw := object(baseEvent, "extra", `{"deep":["\\u0000 is text", 1.5, null], "é": "ü"}`)
	_, err := DefaultRules().ParseEvent([]byte(raw), acceptedAt)
	require.NoError(t, err)
}

func TestParseEventInputNotAliased(t *testing.T) {
	raw := []byte(object(baseEvent, "", ""))
	ev, err := DefaultRules().ParseEvent(raw, acceptedAt)
	require.NoError(t, err)
	for i := range raw {
		raw[i] = 'X'
	}
	require.Equal(t, `{"k":"v"}`, string(ev.EventData))
	require.Equal(t, "1.0", ev.Version)
}

func TestEventRoundTrip(t *testing.T) {
	r := DefaultRules()
	inputs := []string{
		object(baseEvent, "", ""),
		object(object2(baseEvent, map[string]string{
			"event_timestamp": `"2025-12-13T02:00:00.5+01:00"`,
			"event_data":      `{"s":"tab\there \"q\" \\ \u2028 \ud83d\ude00 \u00e9 \/","n":-0.5e-3,"z":{}}`,
			"version":         `"\u0001ctl\u001f"`,
		}), "duration_ms", `0`),
		`{"event_id":"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b","version":"v","event_type":"t","event_timestamp":"0001-01-01T00:00Z",
		  "event_category":"workflow","event_action":"a","event_outcome":"pending","correlation_id":"c","actor_type":"",
		  "actor_id":"i","resource_type":"r","resource_id":"ri","parent_event_id":"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1c",
		  "namespace":"ns","cluster_name":"cl","severity":"high","duration_ms":9223372036854775807,"event_data":{}}`,
	}
	for i, in := range inputs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			ev, err := r.ParseEvent([]byte(in), acceptedAt)
			require.NoError(t, err)
			out, err := ev.MarshalJSON()
			require.NoError(t, err)
			again, err := r.ParseEvent(out, acceptedAt)
			require.NoError(t, err)
			require.Equal(t, ev, again)
			require.True(t, ev.EventTimestamp.Equal(again.EventTimestamp))
		})
	}
}

func TestEventMarshalEmptyData(t *testing.T) {
	out, err := Event{Version: "v", EventTimestamp: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))}.MarshalJSON()
	require.NoError(t, err)
	require.Contains(t, string(out), `"event_timestamp":"2025-01-02T02:04:05.000006Z"`)
	require.Contains(t, string(out), `"event_data":{}`)
	require.True(t, json.Valid(out))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s/", "\x00\x01\x1f\n\r\t\b\f", "é😀\u2028", "bad\xffutf8", "<&>"} {
		got := appendString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(got, &back), "%q", got)
		want, _ := json.Marshal(s)
		var wantBack string
		require.NoError(t, json.Unmarshal(want, &wantBack))
		require.Equal(t, wantBack, back)
	}
}

// TestSubmittedByNotFromTheBody: submitted_by is the writer's to decide;
// a record that carries one, of any type, is parsed as if it had none, and
// the canonical record never carries it.
func TestSubmittedByNotFromTheBody(t *testing.T) {
	r := DefaultRules()
	for _, v := range []string{`"mallory"`, `null`, `42`, `{"name":"mallory"}`} {
		ev, err := r.ParseEvent([]byte(object(baseEvent, "submitted_by", v)), acceptedAt)
		require.NoError(t, err, v)
		require.Nil(t, ev.SubmittedBy, v)
		require.NotContains(t, string(ev.AppendJSON(nil)), "submitted_by")
		n, err := r.ParseNotification([]byte(object(baseNotification, "submitted_by", v)), acceptedAt)
		require.NoError(t, err, v)
		require.Nil(t, n.SubmittedBy, v)
	}
	mallory := "mallory"
	n := Notification{NotificationID: "n", SubmittedBy: &mallory}
	require.NotContains(t, string(n.AppendJSON(nil)), "submitted_by")
}
