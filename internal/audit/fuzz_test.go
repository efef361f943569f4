package audit

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(object(baseEvent, "", "")))
	f.Add([]byte(object(baseEvent, "event_data", `{"a":["\ud83d\ude00","\\u0000",1.5e3,{"b":null}]}`)))
	f.Add([]byte(object(baseEvent, "duration_ms", `12`)))
	f.Add([]byte(object(baseEvent, "event_timestamp", `"2025-12-13T02:00+05:30"`)))
	f.Add([]byte(object(baseEvent, "parent_event_id", `"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"`)))
	f.Add([]byte(object(baseEvent, "actor_id", `"\u00e9\t\""`)))
	f.Add([]byte(object(baseEvent, "x", "\"\xff\"")))
	f.Add([]byte("[" + object(baseEvent, "", "") + "]"))
	f.Add([]byte(`{"version":"\ud800"}`))
	r := DefaultRules()
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := r.ParseEvent(raw, acceptedAt)
		if err != nil {
			require.Equal(t, Event{}, ev)
			return
		}
		out, err := ev.MarshalJSON()
		require.NoError(t, err)
		again, err := r.ParseEvent(out, acceptedAt)
		require.NoError(t, err, "re-marshaled %s", out)
		require.Equal(t, ev, again)

		// The batch form of the same record agrees.
		evs, err := r.ParseEventBatch([]byte("["+strings.TrimSpace(string(raw))+"]"), acceptedAt, DefaultMaxBatchSize)
		require.NoError(t, err)
		require.Equal(t, []Event{ev}, evs)
	})
}
