package eventgen

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
)

func TestTypes(t *testing.T) {
	types := Types()
	if len(types) < 45 || len(types) > 55 {
		t.Fatalf("%d event types", len(types))
	}
	seen := map[string]bool{}
	for _, et := range types {
		if seen[et.Name] || !strings.HasPrefix(et.Name, et.Category+".") || !strings.HasSuffix(et.Name, "."+et.Action) {
			t.Errorf("bad or duplicate type %+v", et)
		}
		seen[et.Name] = true
	}
}

// TestEventsAreValid: every event is what the API would accept, at the
// size the benchmarks claim, and each option does what it says.
func TestEventsAreValid(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"bodies", Options{Seed: 1}},
		{"accepted", Options{Seed: 2, IDs: true}},
		{"spread with parents", Options{Seed: 3, IDs: true, Spread: 10 * time.Minute, Parents: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().UTC()
			events := Events(2000, tc.o)
			require.Len(t, events, 2000)
			rules := audit.DefaultRules()
			var parents int
			for i := range events {
				e := &events[i]
				raw := e.AppendJSON(nil)
				require.True(t, len(raw) >= 550 && len(raw) <= 800, "%d bytes: %s", len(raw), raw)
				back, err := rules.ParseEvent(raw, time.Now())
				require.NoError(t, err)
				require.Equal(t, *e, back, "the canonical JSON round-trips")

				require.Equal(t, tc.o.IDs, e.EventID != uuid.Nil)
				age := before.Sub(e.EventTimestamp)
				require.True(t, age < tc.o.Spread+time.Second, "timestamp %s too old", e.EventTimestamp)
				if e.ParentEventID != nil {
					parents++
					require.Equal(t, events[i-1].EventID, *e.ParentEventID)
				}
			}
			if tc.o.Parents {
				require.InDelta(t, 1000, parents, 150)
			} else {
				require.Zero(t, parents)
			}
		})
	}
}

func TestEventsDependOnTheSeed(t *testing.T) {
	a, b, c := Events(50, Options{Seed: 7}), Events(50, Options{Seed: 7}), Events(50, Options{Seed: 8})
	for i := range a {
		a[i].EventTimestamp, b[i].EventTimestamp, c[i].EventTimestamp = time.Time{}, time.Time{}, time.Time{}
	}
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
}

// TestCorrelationIDs: about 8 events per correlation_id either way; spread
// over the whole run without Traces, close together with.
func TestCorrelationIDs(t *testing.T) {
	const n = 40000
	tests := []struct {
		name string
		o    Options
		// span bounds the median distance between a chain's first and
		// last event.
		minSpan, maxSpan int
	}{
		{"at random", Options{Seed: 2}, n / 2, n},
		{"traces", Options{Seed: 2, Traces: 500}, 1000, 8 * 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, last, count := map[string]int{}, map[string]int{}, map[string]int{}
			for i, e := range Events(n, tc.o) {
				if _, ok := first[e.CorrelationID]; !ok {
					first[e.CorrelationID] = i
				}
				last[e.CorrelationID] = i
				count[e.CorrelationID]++
			}
			require.InDelta(t, 8, float64(n)/float64(len(count)), 1.5, "events per correlation_id")
			var spans []int
			for id, f := range first {
				if count[id] >= 4 {
					spans = append(spans, last[id]-f)
				}
			}
			slices.Sort(spans)
			median := spans[len(spans)/2]
			require.True(t, median >= tc.minSpan && median <= tc.maxSpan, "median span %d", median)
		})
	}
}
