package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestConflictIsParkedAtOnce: a record that reuses a stored event_id with
// other content reaches the DLQ as a conflict; `list --error-class
// conflict` selects it and a replay parks it at once, whatever its
// attempts, since sending it back could only repeat the clash.
func TestConflictIsParkedAtOnce(t *testing.T) {
	e := newEnv(t, 1)
	runWriter(t, e)
	id := uuid.New()
	withID := func(seq int) *kgo.Record {
		v := strings.Replace(string(eventValue(e.tag, "corr", seq)), `{`, fmt.Sprintf(`{"event_id":%q,`, id), 1)
		return &kgo.Record{Topic: e.events, Key: []byte("corr"), Value: []byte(v)}
	}
	produce(t, withID(1))
	testenv.Await(t, 30*time.Second, "the first record stored", func() (bool, string) {
		rows, _ := stored(t, e, "")
		return rows == 1, fmt.Sprintf("%d rows", rows)
	})
	second := withID(2)
	produce(t, second)
	testenv.Await(t, 30*time.Second, "the conflict dead-lettered", func() (bool, string) {
		n := total(ends(t, e.dlq))
		return n == 1, fmt.Sprintf("%d dead letters", n)
	})

	code, out := execBin(t, envOf(e), 30*time.Second, "list", "--error-class", "conflict", "--json")
	require.Equal(t, 0, code, out)
	var listed recordJSON
	require.NoError(t, jsonUnmarshal(strings.TrimSpace(out), &listed), out)
	require.Equal(t, "conflict", listed.ErrorClass)
	require.Contains(t, listed.Error, "event_id "+id.String()+" is stored with other content")
	require.Empty(t, e.list(t, "--error-class", "poison"))

	code, out = execBin(t, envOf(e), 30*time.Second, "replay", "--max-attempts", "5")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "0 replayed to their original topic, 1 parked", out)
	parked := readAll(t, e.parked)
	require.Len(t, parked, 1)
	require.Equal(t, second.Value, parked[0].Value)
	cls, _ := header(parked[0], dlq.HeaderErrorClass)
	require.Equal(t, "conflict", cls)
	require.Len(t, readAll(t, e.events), 2, "nothing was sent back")
	rows, _ := stored(t, e, "")
	require.Equal(t, 1, rows, "the stored event is kept as it is")
}
