package dlq

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
)

func hdr(k, v string) kafka.Header {
	return kafka.Header{Key: []byte(k), Value: []byte(v)}
}

// headerValues returns every value of key, in order.
func headerValues(hs []kafka.Header, key string) []string {
	var out []string
	for _, h := range hs {
		if string(h.Key) == key {
			out = append(out, string(h.Value))
		}
	}
	return out
}

func TestParse(t *testing.T) {
	first := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	last := first.Add(time.Hour)
	full := []kafka.Header{
		hdr("content-type", "application/json"),
		hdr(HeaderOriginalTopic, "audit.events"),
		hdr(HeaderOriginalPartition, "7"),
		hdr(HeaderOriginalOffset, "123456789012"),
		hdr(HeaderErrorClass, "failed"),
		hdr(HeaderError, "insert events: boom"),
		hdr(HeaderFirstFailedAt, first.Format(time.RFC3339Nano)),
		hdr(HeaderFailedAt, last.Format(time.RFC3339Nano)),
		hdr(HeaderAttempts, "3"),
	}
	tests := []struct {
		name    string
		headers []kafka.Header
		ok      bool
		want    Letter
	}{
		{
			name:    "all headers",
			headers: full,
			ok:      true,
			want: Letter{
				OriginalTopic: "audit.events", OriginalPartition: 7, OriginalOffset: 123456789012,
				Class: errclass.Failed, Error: "insert events: boom", FirstFailedAt: first, FailedAt: last, Attempts: 3,
			},
		},
		{
			name:    "origin only",
			headers: []kafka.Header{hdr(HeaderOriginalTopic, "t"), hdr(HeaderOriginalPartition, "0"), hdr(HeaderOriginalOffset, "0")},
			ok:      true,
			want:    Letter{OriginalTopic: "t"},
		},
		{name: "no headers", headers: nil},
		{name: "empty header", headers: []kafka.Header{{}, hdr("x", "y")}},
		{
			name:    "missing offset",
			headers: []kafka.Header{hdr(HeaderOriginalTopic, "t"), hdr(HeaderOriginalPartition, "0")},
			want:    Letter{OriginalTopic: "t"},
		},
		{
			name:    "empty topic",
			headers: []kafka.Header{hdr(HeaderOriginalTopic, ""), hdr(HeaderOriginalPartition, "0"), hdr(HeaderOriginalOffset, "1")},
			want:    Letter{OriginalOffset: 1},
		},
		{
			name:    "mangled partition",
			headers: []kafka.Header{hdr(HeaderOriginalTopic, "t"), hdr(HeaderOriginalPartition, "x"), hdr(HeaderOriginalOffset, "1")},
			want:    Letter{OriginalTopic: "t", OriginalOffset: 1},
		},
		{
			name:    "partition out of int32 range",
			headers: []kafka.Header{hdr(HeaderOriginalTopic, "t"), hdr(HeaderOriginalPartition, "4294967296"), hdr(HeaderOriginalOffset, "1")},
			want:    Letter{OriginalTopic: "t", OriginalPartition: 2147483647, OriginalOffset: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.headers)
			require.Equal(t, tt.ok, ok)
			if tt.ok {
				require.Equal(t, tt.want, got)
			}
		})
	}
}

func TestFailureFirstTime(t *testing.T) {
	now := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	msg := &kafka.Message{Topic: "audit.events", TopicID: "vtx0TaA6SBWj9-2fUwlZWg", Partition: 2, Offset: 99,
		Timestamp: time.UnixMilli(1765591200123), Headers: []kafka.Header{hdr("content-type", "application/json")}}
	l := Failure(msg, errclass.Poison, "invalid audit event: event_outcome: must be one of", now)
	require.Equal(t, Letter{
		OriginalTopic: "audit.events", OriginalPartition: 2, OriginalOffset: 99,
		OriginalTopicID: "vtx0TaA6SBWj9-2fUwlZWg", OriginalTimestamp: 1765591200123, RecordOrigin: true,
		Class: errclass.Poison, Error: "invalid audit event: event_outcome: must be one of",
		FirstFailedAt: now, FailedAt: now, Attempts: 0,
	}, l)
	origin := Origin{Topic: "audit.events", Partition: 2, Offset: 99, TopicID: "vtx0TaA6SBWj9-2fUwlZWg", Timestamp: 1765591200123}
	require.Equal(t, origin, OriginOf(msg))

	// Replayed (new coordinates, new timestamp, no topic id known), the
	// record keeps its origin whole.
	replayed := &kafka.Message{Topic: "audit.events", Partition: 0, Offset: 7, Timestamp: time.Now(), Headers: l.Headers(msg.Headers)}
	require.Equal(t, origin, OriginOf(replayed))
	back, ok := Parse(replayed.Headers)
	require.True(t, ok)
	require.Equal(t, l, back, "the headers carry the whole letter")

	// A broker without topic ids: an empty id is still an origin.
	msg.TopicID = ""
	back, ok = Parse(Failure(msg, errclass.Poison, "x", now).Headers(nil))
	require.True(t, ok)
	require.True(t, back.RecordOrigin)
	require.Empty(t, back.OriginalTopicID)
}

func TestFailureAgainKeepsOriginAndAttempts(t *testing.T) {
	first := time.Date(2026, 5, 4, 3, 2, 1, 5, time.UTC)
	now := first.Add(90 * time.Second)
	prev := Letter{OriginalTopic: "audit.events", OriginalPartition: 1, OriginalOffset: 17,
		Class: errclass.Failed, Error: "old reason", FirstFailedAt: first, FailedAt: first, Attempts: 2}
	// The replayed record sits at new coordinates on the original topic.
	msg := &kafka.Message{Topic: "audit.events", Partition: 0, Offset: 500,
		Headers: prev.Headers([]kafka.Header{hdr("trace", "abc")})}

	l := Failure(msg, errclass.Poison, "new reason", now)
	require.Equal(t, Letter{OriginalTopic: "audit.events", OriginalPartition: 1, OriginalOffset: 17,
		Class: errclass.Poison, Error: "new reason", FirstFailedAt: first, FailedAt: now, Attempts: 2}, l)
	// Written before dlq-original-topic-id and -timestamp: only the
	// coordinates, and it stays so across rounds.
	require.Equal(t, Origin{Topic: "audit.events", Partition: 1, Offset: 17, CoordinatesOnly: true}, OriginOf(msg))
	require.Empty(t, headerValues(l.Headers(msg.Headers), HeaderOriginalTimestamp), "no timestamp is invented for an old letter")

	// A replayed record whose dlq-first-failed-at was lost gets now.
	var stripped []kafka.Header
	for _, h := range msg.Headers {
		if string(h.Key) != HeaderFirstFailedAt {
			stripped = append(stripped, h)
		}
	}
	l = Failure(&kafka.Message{Topic: "audit.events", Headers: stripped}, errclass.Failed, "r", now)
	require.Equal(t, now, l.FirstFailedAt)
	require.Equal(t, 2, l.Attempts)
}

func TestHeadersReplaceNeverAppend(t *testing.T) {
	first := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.FixedZone("x", 3600))
	l := Letter{OriginalTopic: "audit.notifications", OriginalPartition: 3, OriginalOffset: 42,
		Class: errclass.Failed, Error: "e", FirstFailedAt: first, FailedAt: first.Add(time.Second), Attempts: 4}
	orig := []kafka.Header{
		hdr("content-type", "application/json"),
		hdr(HeaderAttempts, "1"), // stale dlq-* headers of an earlier round
		hdr(HeaderError, "stale"),
		{Key: []byte("empty"), Value: []byte{}},
		hdr("dlq-something-else", "dropped too: the dlq- prefix is ours"),
		hdr("auditstream-source", "ingest-api"),
	}
	hs := l.Headers(orig)

	// Non-dlq headers first, in order, byte for byte.
	require.Equal(t, []kafka.Header{
		{Key: []byte("content-type"), Value: []byte("application/json")},
		{Key: []byte("empty"), Value: []byte{}},
		{Key: []byte("auditstream-source"), Value: []byte("ingest-api")},
	}, hs[:3])
	want := map[string]string{
		HeaderOriginalTopic:     "audit.notifications",
		HeaderOriginalPartition: "3",
		HeaderOriginalOffset:    "42",
		HeaderErrorClass:        "failed",
		HeaderError:             "e",
		HeaderFirstFailedAt:     "2026-01-02T02:04:05.6Z",
		HeaderFailedAt:          "2026-01-02T02:04:06.6Z",
		HeaderAttempts:          "4",
	}
	require.Len(t, hs, 3+len(want))
	for k, v := range want {
		require.Equal(t, []string{v}, headerValues(hs, k), k)
	}
	for _, k := range []string{HeaderFirstFailedAt, HeaderFailedAt} {
		_, err := time.Parse(time.RFC3339, headerValues(hs, k)[0])
		require.NoError(t, err, "%s is RFC 3339", k)
	}

	// Round trip: what Headers writes, Parse reads; a second round does
	// not grow the record.
	got, ok := Parse(hs)
	require.True(t, ok)
	require.True(t, got.FirstFailedAt.Equal(l.FirstFailedAt))
	got.FirstFailedAt, got.FailedAt = l.FirstFailedAt, l.FailedAt
	require.Equal(t, l, got)
	require.Len(t, got.Headers(hs), len(hs))
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		same  bool
		bytes int // expected length when cut
	}{
		{name: "empty", in: "", same: true},
		{name: "short", in: "boom", same: true},
		{name: "exactly max", in: strings.Repeat("a", MaxErrorBytes), same: true},
		{name: "one over", in: strings.Repeat("a", MaxErrorBytes+1), bytes: MaxErrorBytes},
		// 2-byte runes: the cut point 1021 is odd, inside a rune; the
		// cut backs off to 1020.
		{name: "two-byte runes", in: strings.Repeat("é", 600), bytes: 1020 + 3},
		// 3-byte runes at offset 1: rune starts at 1, 4, ..., 1021.
		{name: "three-byte runes shifted", in: "a" + strings.Repeat("€", 400), bytes: 1021 + 3},
		// 4-byte runes: starts at 0, 4, ..., 1020.
		{name: "four-byte runes", in: strings.Repeat("😀", 300), bytes: 1020 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Truncate(tt.in)
			if tt.same {
				require.Equal(t, tt.in, got)
				return
			}
			require.Len(t, got, tt.bytes)
			require.LessOrEqual(t, len(got), MaxErrorBytes)
			require.True(t, utf8.ValidString(got), "valid UTF-8")
			require.True(t, strings.HasSuffix(got, "…"), "marks the cut")
			require.True(t, strings.HasPrefix(tt.in, strings.TrimSuffix(got, "…")), "a prefix of the reason")
		})
	}
}

func TestFailureTruncatesReason(t *testing.T) {
	l := Failure(&kafka.Message{Topic: "t"}, errclass.Poison, strings.Repeat("ü", 2000), time.Now())
	require.LessOrEqual(t, len(l.Error), MaxErrorBytes)
	require.True(t, utf8.ValidString(l.Error))
}
