package integrity_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
)

func ptr[T any](v T) *T { return &v }

// newKeys returns keys of the given ids, the last one linking.
func newKeys(t *testing.T, ids ...string) (*integrity.Keys, []keyring.Key) {
	t.Helper()
	keys := make([]keyring.Key, len(ids))
	for i, id := range ids {
		k, err := keyring.NewKey(id)
		require.NoError(t, err)
		keys[i] = k
	}
	ring, err := keyring.Parse(keyring.Marshal(keys...), "")
	require.NoError(t, err)
	return integrity.NewKeys(ring), keys
}

func testEvent(correlationID string, i int) audit.Event {
	return audit.Event{
		EventID: uuid.New(), Version: "1.0", EventType: "gateway.signal.received",
		EventTimestamp: time.Date(2025, 12, 13, 2, 0, i, 1000, time.UTC),
		EventCategory:  "gateway", EventAction: "received", EventOutcome: "success", CorrelationID: correlationID,
		EventData:   json.RawMessage(fmt.Sprintf(`{"i":%d,"labels":{"pod":"p-%d"}}`, i, i)),
		SubmittedBy: ptr("svc-gateway"), Namespace: ptr("production"),
	}
}

// chain links n events of one correlation id.
func chain(t *testing.T, keys *integrity.Keys, correlationID string, n int) []audit.Event {
	t.Helper()
	events := make([]audit.Event, n)
	l := keys.Linker()
	var head integrity.Head
	for i := range events {
		events[i] = testEvent(correlationID, i)
		var err error
		head, err = l.Link(&events[i], head)
		require.NoError(t, err)
	}
	return events
}

// verify runs a ChainVerifier over events and returns every break.
func verify(keys *integrity.Keys, correlationID string, anchors []integrity.Head, events []audit.Event) (integrity.Summary, []integrity.Break) {
	v := keys.NewChainVerifier(correlationID, anchors)
	var breaks []integrity.Break
	for i := range events {
		if b := v.Check(&events[i]); b != nil {
			breaks = append(breaks, *b)
		}
	}
	summary, end := v.Finish()
	return summary, append(breaks, end...)
}

func TestLink(t *testing.T) {
	keys, _ := newKeys(t, "k1")
	events := chain(t, keys, "c-1", 3)
	for i, e := range events {
		require.Equal(t, int64(i+1), *e.ChainSeq)
		require.Equal(t, "k1", *e.HashKeyID)
		require.Equal(t, integrity.HashVersion, *e.HashVersion)
		require.Len(t, e.EventHash, 32)
		if i == 0 {
			require.NotNil(t, e.PreviousEventHash, "empty, not null")
			require.Empty(t, e.PreviousEventHash)
		} else {
			require.Equal(t, events[i-1].EventHash, e.PreviousEventHash)
		}
		got, err := keys.Recompute(&e)
		require.NoError(t, err)
		require.Equal(t, e.EventHash, got)
	}
	summary, breaks := verify(keys, "c-1", nil, events)
	require.Empty(t, breaks)
	require.Equal(t, integrity.Summary{Events: 3, Verified: 3, FirstSeq: 1, LastSeq: 3}, summary)

	// An event whose event_data cannot be stored gets no chain fields.
	bad := testEvent("c-1", 9)
	bad.EventData = json.RawMessage(`{"a":"\u0000"}`)
	_, err := keys.Linker().Link(&bad, integrity.Head{})
	require.ErrorIs(t, err, integrity.ErrJSON)
	require.Nil(t, bad.ChainSeq)
	require.Nil(t, bad.EventHash)
}

// TestEveryFieldIsCovered: changing any stored field, the chain's own
// fields included, changes the canonical form and breaks the hash; only
// event_date (derived by PostgreSQL) and event_hash itself do not enter.
func TestEveryFieldIsCovered(t *testing.T) {
	keys, _ := newKeys(t, "k1", "k2")
	base := chain(t, keys, "c-1", 2)[1]
	base.ActorType, base.ActorID, base.ResourceType, base.ResourceID = ptr("service"), ptr("a"), ptr("Signal"), ptr("r")
	base.ParentEventID, base.ClusterName, base.Severity, base.DurationMS = ptr(uuid.New()), ptr("eu-1"), ptr("high"), ptr(int64(7))
	rehash := func(e *audit.Event) {
		got, err := keys.Recompute(e)
		require.NoError(t, err)
		e.EventHash = got
	}
	rehash(&base)
	canonical := func(e audit.Event) []byte {
		b, err := integrity.AppendCanonical(nil, &e)
		require.NoError(t, err)
		return b
	}
	original := canonical(base)

	changes := map[string]func(e *audit.Event){
		"event_id":            func(e *audit.Event) { e.EventID = uuid.New() },
		"version":             func(e *audit.Event) { e.Version = "2.0" },
		"event_type":          func(e *audit.Event) { e.EventType += "x" },
		"event_timestamp":     func(e *audit.Event) { e.EventTimestamp = e.EventTimestamp.Add(time.Microsecond) },
		"event_category":      func(e *audit.Event) { e.EventCategory = "workflow" },
		"event_action":        func(e *audit.Event) { e.EventAction = "sent" },
		"event_outcome":       func(e *audit.Event) { e.EventOutcome = "failure" },
		"correlation_id":      func(e *audit.Event) { e.CorrelationID = "c-2" },
		"event_data":          func(e *audit.Event) { e.EventData = json.RawMessage(`{"i":1,"labels":{"pod":"p-2"}}`) },
		"actor_type":          func(e *audit.Event) { e.ActorType = nil },
		"actor_id":            func(e *audit.Event) { e.ActorID = ptr("") },
		"resource_type":       func(e *audit.Event) { e.ResourceType = ptr("Pod") },
		"resource_id":         func(e *audit.Event) { e.ResourceID = nil },
		"parent_event_id":     func(e *audit.Event) { e.ParentEventID = nil },
		"namespace":           func(e *audit.Event) { e.Namespace = ptr("staging") },
		"cluster_name":        func(e *audit.Event) { e.ClusterName = ptr("") },
		"severity":            func(e *audit.Event) { e.Severity = nil },
		"duration_ms":         func(e *audit.Event) { e.DurationMS = ptr(int64(8)) },
		"actor_ip":            func(e *audit.Event) { e.ActorIP = netip.MustParseAddr("2001:db8::9") },
		"cluster_id":          func(e *audit.Event) { e.ClusterID = ptr("c-uid") },
		"error_code":          func(e *audit.Event) { e.ErrorCode = ptr("") },
		"error_message":       func(e *audit.Event) { e.ErrorMessage = ptr("boom") },
		"is_sensitive":        func(e *audit.Event) { e.IsSensitive = true },
		"retention_days":      func(e *audit.Event) { e.RetentionDays = ptr(int32(30)) },
		"submitted_by":        func(e *audit.Event) { e.SubmittedBy = ptr("kafka:svc-gateway") },
		"chain_seq":           func(e *audit.Event) { e.ChainSeq = ptr(int64(3)) },
		"previous_event_hash": func(e *audit.Event) { e.PreviousEventHash = bytes.Repeat([]byte{1}, 32) },
		"hash_key_id":         func(e *audit.Event) { e.HashKeyID = ptr("k1") },
		"hash_version":        func(e *audit.Event) { e.HashVersion = ptr(int16(1)) }, // unchanged: see below
	}
	var names []string
	for _, f := range audit.EventFields() {
		names = append(names, f.Name)
	}
	for _, name := range names {
		change, ok := changes[name]
		if name == "event_date" || name == "event_hash" {
			require.False(t, ok)
			e := base
			if name == "event_date" {
				e.EventDate = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
			} else {
				e.EventHash = bytes.Repeat([]byte{2}, 32)
			}
			require.Equal(t, original, canonical(e), "%s is not part of the form", name)
			continue
		}
		require.True(t, ok, "the test lacks a change of %s", name)
		t.Run(name, func(t *testing.T) {
			e := base
			change(&e)
			if name == "hash_version" {
				// Another version cannot be hashed at all; the form
				// still differs.
				e.HashVersion = ptr(int16(2))
				require.NotEqual(t, original, canonical(e))
				_, err := keys.Recompute(&e)
				require.ErrorIs(t, err, integrity.ErrVersion)
				return
			}
			if name != "previous_event_hash" {
				require.NotEqual(t, original, canonical(e), "%s is part of the form", name)
			}
			got, err := keys.Recompute(&e)
			require.NoError(t, err)
			require.NotEqual(t, e.EventHash, got, "changing %s breaks the hash", name)
		})
	}
}

// TestNullAndEmptyDiffer: an absent optional field and an empty string
// are different events.
func TestNullAndEmptyDiffer(t *testing.T) {
	e := testEvent("c", 0)
	e.Severity = nil
	absent, err := integrity.AppendCanonical(nil, &e)
	require.NoError(t, err)
	e.Severity = ptr("")
	empty, err := integrity.AppendCanonical(nil, &e)
	require.NoError(t, err)
	require.NotEqual(t, absent, empty)
	require.Contains(t, string(empty), "severity\x00\x00\x00\x00\x00")
	require.NotContains(t, string(absent), "severity")
}

func TestChainVerifierNamesTheBreak(t *testing.T) {
	keys, _ := newKeys(t, "k1")
	other, _ := newKeys(t, "k1") // the same id, another secret: a forger's key
	clean := chain(t, keys, "c-1", 5)
	clone := func() []audit.Event {
		out := make([]audit.Event, len(clean))
		copy(out, clean)
		return out
	}
	tests := []struct {
		name    string
		tamper  func(events []audit.Event) []audit.Event
		anchors []integrity.Head
		kind    integrity.BreakKind
		seq     int64
	}{
		{"event_data changed", func(ev []audit.Event) []audit.Event {
			ev[2].EventData = json.RawMessage(`{"i":2,"labels":{"pod":"evil"}}`)
			return ev
		}, nil, integrity.BreakAltered, 3},
		{"submitted_by changed", func(ev []audit.Event) []audit.Event {
			ev[1].SubmittedBy = ptr("admin")
			return ev
		}, nil, integrity.BreakAltered, 2},
		{"middle event deleted", func(ev []audit.Event) []audit.Event {
			return append(ev[:2], ev[3:]...)
		}, nil, integrity.BreakGap, 4},
		{"forged event, hash made with another key", func(ev []audit.Event) []audit.Event {
			forged := testEvent("c-1", 9)
			_, err := other.Linker().Link(&forged, integrity.Head{Seq: 5, Hash: ev[4].EventHash})
			require.NoError(t, err)
			return append(ev, forged)
		}, nil, integrity.BreakAltered, 6},
		{"forged event inserted at a taken chain_seq", func(ev []audit.Event) []audit.Event {
			forged := testEvent("c-1", 9)
			_, err := other.Linker().Link(&forged, integrity.Head{Seq: 2, Hash: ev[1].EventHash})
			require.NoError(t, err)
			return append(ev[:3], append([]audit.Event{forged}, ev[3:]...)...)
		}, nil, integrity.BreakOrder, 3},
		{"two chain_seq swapped", func(ev []audit.Event) []audit.Event {
			ev[1].ChainSeq, ev[2].ChainSeq = ev[2].ChainSeq, ev[1].ChainSeq
			ev[1], ev[2] = ev[2], ev[1] // read back in chain_seq order
			return ev
		}, nil, integrity.BreakLink, 2},
		{"chain fields erased", func(ev []audit.Event) []audit.Event {
			ev[3].ChainSeq, ev[3].EventHash = nil, nil
			return ev
		}, nil, integrity.BreakUnchained, 0},
		{"recomputed with the right key after a checkpoint", func(ev []audit.Event) []audit.Event {
			ev = ev[:2]
			l := keys.Linker()
			head := integrity.Head{Seq: 2, Hash: ev[1].EventHash}
			for i := 2; i < 5; i++ {
				e := testEvent("c-1", 100+i)
				var err error
				head, err = l.Link(&e, head)
				require.NoError(t, err)
				ev = append(ev, e)
			}
			return ev
		}, []integrity.Head{{Seq: 2, Hash: clean[1].EventHash}, {Seq: 4, Hash: clean[3].EventHash}}, integrity.BreakCheckpoint, 4},
		{"cut behind the last checkpoint", func(ev []audit.Event) []audit.Event {
			return ev[:3]
		}, []integrity.Head{{Seq: 5, Hash: clean[4].EventHash}}, integrity.BreakCut, 5},
		{"an event of another chain", func(ev []audit.Event) []audit.Event {
			ev[2].CorrelationID = "c-2"
			return ev
		}, nil, integrity.BreakUnchained, 3},
		{"a key that is not loaded", func(ev []audit.Event) []audit.Event {
			ev[4].HashKeyID = ptr("k9")
			return ev
		}, nil, integrity.BreakKey, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, breaks := verify(keys, "c-1", tc.anchors, tc.tamper(clone()))
			require.NotEmpty(t, breaks)
			require.Equal(t, tc.kind, breaks[0].Kind, "%+v", breaks[0])
			require.Equal(t, tc.seq, breaks[0].ChainSeq, "%+v", breaks[0])
			require.NotEmpty(t, breaks[0].Message)
		})
	}

	// The same anchors on the clean chain: no break.
	summary, breaks := verify(keys, "c-1", []integrity.Head{{Seq: 2, Hash: clean[1].EventHash}, {Seq: 5, Hash: clean[4].EventHash}}, clean)
	require.Empty(t, breaks)
	require.Equal(t, int64(5), summary.Verified)
}

// TestChainVerifierTruncated: a chain whose first events are gone (a
// dropped partition) verifies from the first one left, and says so.
func TestChainVerifierTruncated(t *testing.T) {
	keys, _ := newKeys(t, "k1")
	events := chain(t, keys, "c-1", 5)
	summary, breaks := verify(keys, "c-1", nil, events[2:])
	require.Empty(t, breaks)
	require.Equal(t, integrity.Summary{Events: 3, Verified: 3, FirstSeq: 3, LastSeq: 5, Truncated: true}, summary)
}

// TestKeyRotation: events linked before and after a key is added verify
// with the new file; without the old key they cannot be checked.
func TestKeyRotation(t *testing.T) {
	before, oldKeys := newKeys(t, "2025-01")
	events := chain(t, before, "c-1", 2)

	added, err := keyring.NewKey("2025-06")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(oldKeys[0], added), "")
	require.NoError(t, err)
	after := integrity.NewKeys(ring)
	require.Equal(t, "2025-06", after.SigningKeyID())
	head := integrity.Head{Seq: 2, Hash: events[1].EventHash}
	for i := range 2 {
		e := testEvent("c-1", 10+i)
		head, err = after.Linker().Link(&e, head)
		require.NoError(t, err)
		require.Equal(t, "2025-06", *e.HashKeyID)
		events = append(events, e)
	}
	_, breaks := verify(after, "c-1", nil, events)
	require.Empty(t, breaks)

	ring, err = keyring.Parse(keyring.Marshal(added), "")
	require.NoError(t, err)
	_, breaks = verify(integrity.NewKeys(ring), "c-1", nil, events)
	require.Len(t, breaks, 2)
	require.Equal(t, integrity.BreakKey, breaks[0].Kind)
}

// TestLinkVerifier: without the HMAC keys, what breaks the links is
// found; an altered field with its hash left alone is not, which is why
// the keyed check exists.
func TestLinkVerifier(t *testing.T) {
	keys, _ := newKeys(t, "k1")
	clean := chain(t, keys, "c-1", 5)
	clone := func() []audit.Event { return append([]audit.Event(nil), clean...) }
	link := func(events []audit.Event) []integrity.Break {
		v := integrity.NewLinkVerifier("c-1")
		var breaks []integrity.Break
		for i := range events {
			if b := v.Check(&events[i]); b != nil {
				breaks = append(breaks, *b)
			}
		}
		_, end := v.Finish()
		return append(breaks, end...)
	}
	require.Empty(t, link(clean))

	for _, tc := range []struct {
		name   string
		tamper func([]audit.Event) []audit.Event
		kind   integrity.BreakKind
		seq    int64
	}{
		{"middle event deleted", func(ev []audit.Event) []audit.Event { return append(ev[:2], ev[3:]...) }, integrity.BreakGap, 4},
		{"two chain_seq swapped", func(ev []audit.Event) []audit.Event {
			ev[1].ChainSeq, ev[2].ChainSeq = ev[2].ChainSeq, ev[1].ChainSeq
			ev[1], ev[2] = ev[2], ev[1]
			return ev
		}, integrity.BreakLink, 2},
		{"an event's hash replaced", func(ev []audit.Event) []audit.Event {
			ev[2].EventHash = bytes.Repeat([]byte{7}, 32)
			return ev
		}, integrity.BreakLink, 4},
		{"chain fields erased", func(ev []audit.Event) []audit.Event {
			ev[1].HashKeyID = nil
			return ev
		}, integrity.BreakUnchained, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			breaks := link(tc.tamper(clone()))
			require.NotEmpty(t, breaks)
			require.Equal(t, tc.kind, breaks[0].Kind, "%+v", breaks[0])
			require.Equal(t, tc.seq, breaks[0].ChainSeq)
		})
	}

	altered := clone()
	altered[2].EventData = json.RawMessage(`{"i":2,"labels":{"pod":"evil"}}`)
	require.Empty(t, link(altered), "only the keyed check sees a field change")
	_, breaks := verify(keys, "c-1", nil, altered)
	require.Equal(t, integrity.BreakAltered, breaks[0].Kind)
}

// TestSubset: the events of a filtered export skip chain_seq values
// without a break, and are checked otherwise.
func TestSubset(t *testing.T) {
	keys, _ := newKeys(t, "k1")
	events := chain(t, keys, "c-1", 6)
	some := []audit.Event{events[1], events[2], events[4]}
	run := func(v *integrity.ChainVerifier, events []audit.Event) (integrity.ChainReport, error) {
		return v.Verify(func(fn func(*audit.Event) error) error {
			for i := range events {
				if err := fn(&events[i]); err != nil {
					return err
				}
			}
			return nil
		}, 10)
	}
	r, err := run(keys.NewChainVerifier("c-1", nil).Subset(), some)
	require.NoError(t, err)
	require.True(t, r.Valid(), "%+v", r.Breaks)
	require.Equal(t, integrity.Summary{Events: 3, Verified: 3, FirstSeq: 2, LastSeq: 5, Truncated: true, Skipped: 2}, r.Summary)

	some[1].Severity = ptr("low")
	r, err = run(keys.NewChainVerifier("c-1", nil).Subset(), some)
	require.NoError(t, err)
	require.Equal(t, integrity.BreakAltered, r.Breaks[0].Kind)
	r, err = run(integrity.NewLinkVerifier("c-1").Subset(), some)
	require.NoError(t, err)
	require.True(t, r.Valid())
}

// TestRetention: chain_seq values that retention removed are no break, as
// many as it removed and where it removed them; any other missing one is.
func TestRetention(t *testing.T) {
	keys, _ := newKeys(t, "k1")
	events := chain(t, keys, "c-1", 10)
	without := func(seqs ...int64) []audit.Event {
		var out []audit.Event
		for _, e := range events {
			if !slices.Contains(seqs, *e.ChainSeq) {
				out = append(out, e)
			}
		}
		return out
	}
	anchor := []integrity.Head{{Seq: 10, Hash: events[9].EventHash}}
	tests := []struct {
		name    string
		events  []audit.Event
		dropped []integrity.Dropped
		anchors []integrity.Head
		reach   int64
		kind    integrity.BreakKind // "" for a valid chain
		seq     int64
		summary integrity.Summary
	}{
		{name: "the head dropped", events: without(1, 2, 3), dropped: []integrity.Dropped{{MinSeq: 1, MaxSeq: 3, Events: 3}},
			summary: integrity.Summary{Events: 7, Verified: 7, FirstSeq: 4, LastSeq: 10, Truncated: true, Dropped: 3}},
		{name: "events of a dropped month inside the chain", events: without(5, 7),
			dropped: []integrity.Dropped{{MinSeq: 5, MaxSeq: 7, Events: 2}}, anchors: anchor, reach: 10,
			summary: integrity.Summary{Events: 8, Verified: 8, FirstSeq: 1, LastSeq: 10, Dropped: 2}},
		{name: "the head deleted, nothing dropped", events: without(1, 2), dropped: nil, kind: integrity.BreakGap, seq: 3},
		{name: "one more deleted inside a dropped range", events: without(5, 6, 7),
			dropped: []integrity.Dropped{{MinSeq: 5, MaxSeq: 7, Events: 2}}, kind: integrity.BreakGap, seq: 8},
		{name: "deleted outside the dropped range", events: without(1, 2, 3, 6),
			dropped: []integrity.Dropped{{MinSeq: 1, MaxSeq: 3, Events: 3}}, kind: integrity.BreakGap, seq: 7},
		{name: "the checkpointed end dropped", events: without(9, 10), anchors: anchor,
			dropped: []integrity.Dropped{{MinSeq: 9, MaxSeq: 10, Events: 2}},
			summary: integrity.Summary{Events: 8, Verified: 8, FirstSeq: 1, LastSeq: 8, Dropped: 2}},
		{name: "the end deleted after the last checkpoint", events: without(9, 10), reach: 10, kind: integrity.BreakCut, seq: 10},
		{name: "every event dropped", events: nil, anchors: anchor, reach: 10,
			dropped: []integrity.Dropped{{MinSeq: 1, MaxSeq: 6, Events: 6}, {MinSeq: 7, MaxSeq: 10, Events: 4}},
			summary: integrity.Summary{Dropped: 10}},
		{name: "every event deleted", events: nil, anchors: anchor, kind: integrity.BreakCut, seq: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := keys.NewChainVerifier("c-1", tc.anchors).Retention(tc.dropped).Reaches(integrity.Head{Seq: tc.reach})
			r, err := v.Verify(func(fn func(*audit.Event) error) error {
				for i := range tc.events {
					if err := fn(&tc.events[i]); err != nil {
						return err
					}
				}
				return nil
			}, 5)
			require.NoError(t, err)
			if tc.kind == "" {
				require.True(t, r.Valid(), "%+v", r.Breaks)
				require.Equal(t, tc.summary, r.Summary)
				return
			}
			require.False(t, r.Valid())
			require.Equal(t, tc.kind, r.Breaks[0].Kind, "%+v", r.Breaks[0])
			require.Equal(t, tc.seq, r.Breaks[0].ChainSeq, "%+v", r.Breaks[0])
			require.Contains(t, r.Breaks[0].Message, "deleted")
		})
	}
}

// TestVerifyKeepsTheFirstBreaks: memory stays bounded however broken the
// chain is; the rest are counted.
func TestVerifyKeepsTheFirstBreaks(t *testing.T) {
	keys, _ := newKeys(t, "k1")
	events := chain(t, keys, "c-1", 20)
	for i := range events {
		events[i].EventAction = "forged"
	}
	r, err := keys.NewChainVerifier("c-1", nil).Verify(func(fn func(*audit.Event) error) error {
		for i := range events {
			if err := fn(&events[i]); err != nil {
				return err
			}
		}
		return nil
	}, 3)
	require.NoError(t, err)
	require.Len(t, r.Breaks, 3)
	require.Equal(t, int64(17), r.MoreBreaks)
	require.Equal(t, []int64{1, 2, 3}, []int64{r.Breaks[0].ChainSeq, r.Breaks[1].ChainSeq, r.Breaks[2].ChainSeq})
}
