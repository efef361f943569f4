package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestNewEventID(t *testing.T) {
	a, b := NewEventID(), NewEventID()
	require.NotEqual(t, a, b)
	require.Equal(t, uuid.Version(7), a.Version())
	require.Equal(t, uuid.RFC4122, a.Variant())
	require.LessOrEqual(t, a.String()[:8], b.String()[:8], "time-ordered")
}

func TestDeterministicEventID(t *testing.T) {
	id := DeterministicEventID("audit.events", 3, 1234567)
	require.Equal(t, id, DeterministicEventID("audit.events", 3, 1234567), "stable")
	require.Equal(t, uuid.Version(5), id.Version())
	// The documented derivation, recomputed independently.
	require.Equal(t, uuid.NewSHA1(uuid.MustParse("6f1d8a52-3c1e-4b7a-9d3e-2a5c0e8b7f41"), []byte("audit.events/3/1234567")), id)
	// Pinned: changing the derivation would re-key stored events.
	require.Equal(t, id.String(), uuid.NewSHA1(DeterministicIDNamespace, []byte("audit.events/3/1234567")).String())

	seen := map[uuid.UUID]bool{}
	for _, c := range []struct {
		topic string
		p     int32
		o     int64
	}{
		{"audit.events", 3, 1234567}, {"audit.events", 3, 1234568}, {"audit.events", 4, 1234567},
		{"audit.events2", 3, 1234567}, {"audit.events", 31, 234567}, {"audit.events", 0, 0}, {"other", 0, 0},
	} {
		id := DeterministicEventID(c.topic, c.p, c.o)
		require.False(t, seen[id], "%v collides", c)
		seen[id] = true
	}
}

func TestDeterministicEventIDV2(t *testing.T) {
	o := RecordOrigin{Topic: "audit.events", TopicID: "vtx0TaA6SBWj9-2fUwlZWg", Partition: 3, Offset: 1234567,
		Timestamp: 1765591200000, Key: []byte("rr-1"), Value: []byte(`{"a":1}`)}
	id := DeterministicEventIDV2(o)
	require.Equal(t, id, DeterministicEventIDV2(o), "a redelivery gets the same id")
	require.Equal(t, uuid.Version(5), id.Version())
	// The documented derivation, recomputed independently.
	content := sha256.Sum256(append([]byte{0, 0, 0, 0, 0, 0, 0, 4}, `rr-1{"a":1}`...))
	name := "v2/audit.events/vtx0TaA6SBWj9-2fUwlZWg/3/1234567/1765591200000/" + hex.EncodeToString(content[:])
	require.Equal(t, uuid.NewSHA1(uuid.MustParse("6f1d8a52-3c1e-4b7a-9d3e-2a5c0e8b7f41"), []byte(name)), id)

	// Whatever a reset, a restore or another record changes is a new id.
	seen := map[uuid.UUID]string{id: "original"}
	for what, change := range map[string]func(*RecordOrigin){
		"topic created again":  func(o *RecordOrigin) { o.TopicID = "AAAAAAAAAAAAAAAAAAAAAQ" },
		"broker without ids":   func(o *RecordOrigin) { o.TopicID = "" },
		"another timestamp":    func(o *RecordOrigin) { o.Timestamp++ },
		"another value":        func(o *RecordOrigin) { o.Value = []byte(`{"a":2}`) },
		"another key":          func(o *RecordOrigin) { o.Key = []byte("rr-2") },
		"key bytes moved":      func(o *RecordOrigin) { o.Key, o.Value = []byte("rr-1{"), []byte(`"a":1}`) },
		"no key":               func(o *RecordOrigin) { o.Key = nil },
		"another offset":       func(o *RecordOrigin) { o.Offset++ },
		"another partition":    func(o *RecordOrigin) { o.Partition++ },
		"another topic":        func(o *RecordOrigin) { o.Topic = "audit.events2" },
		"topic id in the name": func(o *RecordOrigin) { o.Topic, o.TopicID = "audit.events/vtx0TaA6SBWj9-2fUwlZWg", "" },
	} {
		c := o
		change(&c)
		got := DeterministicEventIDV2(c)
		require.Empty(t, seen[got], "%s collides with %s", what, seen[got])
		seen[got] = what
	}
	require.NotEqual(t, DeterministicEventID(o.Topic, o.Partition, o.Offset), id, "v1 and v2 never share a name")
}

func TestRulesValidate(t *testing.T) {
	require.NoError(t, DefaultRules().Validate())
	for name, mutate := range map[string]func(*Rules){
		"negative skew":      func(r *Rules) { r.MaxFutureSkew = -1 },
		"no categories":      func(r *Rules) { r.Categories = nil },
		"empty category":     func(r *Rules) { r.Categories = []string{"a", ""} },
		"duplicate category": func(r *Rules) { r.Categories = []string{"a", "a"} },
		"zero data limit":    func(r *Rules) { r.MaxEventDataBytes = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			r := DefaultRules()
			mutate(&r)
			require.Error(t, r.Validate())
		})
	}
	// DefaultRules returns independent slices.
	r := DefaultRules()
	r.Categories[0] = "changed"
	require.Equal(t, "gateway", DefaultRules().Categories[0])
}
