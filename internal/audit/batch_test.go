package audit

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func batch(elems ...string) []byte { return []byte("[" + strings.Join(elems, ",") + "]") }

func TestParseEventBatch(t *testing.T) {
	r := DefaultRules()
	good := object(baseEvent, "", "")
	evs, err := r.ParseEventBatch(batch(good, object(baseEvent, "version", `"2.0"`)), acceptedAt, DefaultMaxBatchSize)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "1.0", evs[0].Version)
	require.Equal(t, "2.0", evs[1].Version)

	evs, err = r.ParseEventBatch([]byte(" [ "+good+" ] "), acceptedAt, DefaultMaxBatchSize)
	require.NoError(t, err)
	require.Len(t, evs, 1)
}

func TestParseEventBatchFieldErrors(t *testing.T) {
	r := DefaultRules()
	good := object(baseEvent, "", "")
	raw := batch(
		good,
		object(baseEvent, "event_type", absent),
		`"not an object"`,
		good,
		object(object2(baseEvent, map[string]string{"version": `""`}), "event_outcome", `"x"`),
		`null`,
		object(baseEvent, "actor_id", "\"\xff\""),
	)
	evs, err := r.ParseEventBatch(raw, acceptedAt, DefaultMaxBatchSize)
	require.Nil(t, evs)
	var fes FieldErrors
	require.ErrorAs(t, err, &fes)
	require.Equal(t, FieldErrors{
		fe("[1].event_type", ReasonRequired, msgRequired),
		fe("[2]", ReasonType, msgObject),
		fe("[4].version", ReasonEmpty, msgEmpty),
		fe("[4].event_outcome", ReasonEnum, "must be one of: success, failure, pending"),
		fe("[5]", ReasonType, msgObject),
		fe("[6].actor_id", ReasonUTF8, msgUTF8),
	}, fes)
	require.Equal(t, "event_type", fes[0].Name())
	require.Equal(t, "element", fes[1].Name())
	require.Equal(t, "event_outcome", fes[3].Name())
	require.Equal(t, "version", fe("version", "", "").Name())
	require.Equal(t, msgObject, fes.Map()["[2]"])
}

func TestParseEventBatchBodyErrors(t *testing.T) {
	r := DefaultRules()
	good := object(baseEvent, "", "")
	cases := []struct {
		name     string
		raw      []byte
		sentinel error
		detail   string
	}{
		{"empty", []byte(" [ ] "), ErrEmptyBatch, "batch must contain at least one event"},
		{"over max", batch(good, good, good, good), ErrBatchTooLarge, "batch contains 4 events; at most 3 are allowed"},
		{"object", []byte(good), ErrNotArray, "body must be a JSON array of events, got an object"},
		{"malformed", []byte("[" + good), ErrMalformed, "body is not valid JSON: unexpected end of JSON input"},
		{"empty body", nil, ErrMalformed, "body is empty; a JSON document is required"},
		{"utf8 in unknown field", batch(good, object(baseEvent, "x", "\"\xff\"")), ErrInvalidUTF8, `element [1]: field "x" is not valid UTF-8`},
		{"NUL in unknown field", batch(good, good, object(baseEvent, "x", `["\u0000"]`)), ErrNUL, `element [2]: field "x" contains a NUL character (\u0000)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := r.ParseEventBatch(tc.raw, acceptedAt, 3)
			require.Nil(t, evs)
			require.ErrorIs(t, err, tc.sentinel)
			var be *BodyError
			require.True(t, errors.As(err, &be))
			require.True(t, strings.HasPrefix(be.Detail, tc.detail), "detail %q", be.Detail)
		})
	}
}

func TestParseEventBatchMaxDefault(t *testing.T) {
	r := DefaultRules()
	good := object(baseEvent, "", "")
	elems := make([]string, DefaultMaxBatchSize)
	for i := range elems {
		elems[i] = good
	}
	evs, err := r.ParseEventBatch(batch(elems...), acceptedAt, DefaultMaxBatchSize)
	require.NoError(t, err)
	require.Len(t, evs, 5000)
	_, err = r.ParseEventBatch(batch(append(elems, good)...), acceptedAt, DefaultMaxBatchSize)
	require.ErrorIs(t, err, ErrBatchTooLarge)
	require.EqualError(t, err, "batch contains 5001 events; at most 5000 are allowed")
}

func TestParseEventBatchErrorForEveryElement(t *testing.T) {
	bad := object(baseEvent, "event_data", absent)
	elems := make([]string, 12)
	for i := range elems {
		elems[i] = bad
	}
	_, err := DefaultRules().ParseEventBatch(batch(elems...), acceptedAt, DefaultMaxBatchSize)
	var fes FieldErrors
	require.ErrorAs(t, err, &fes)
	require.Len(t, fes, 12)
	for i, e := range fes {
		require.Equal(t, "["+strconv.Itoa(i)+"].event_data", e.Field)
		require.Equal(t, "event_data", e.Name())
	}
}

// TestParseEventBatchDuplicateEventIDs: a batch that carries one event_id
// twice would be answered "n accepted" and stored once; both positions are
// rejected, each naming the other, in element order.
func TestParseEventBatchDuplicateEventIDs(t *testing.T) {
	r := DefaultRules()
	const a, b = `"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"`, `"0190b1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1c"`
	raw := batch(
		object(baseEvent, "event_id", a),
		object(baseEvent, "event_id", b),
		object(append(slices.Clone(baseEvent), member{"event_id", a}), "version", absent),
		object(baseEvent, "", ""),
		object(baseEvent, "event_id", a),
		object(baseEvent, "event_id", b),
	)
	evs, err := r.ParseEventBatch(raw, acceptedAt, DefaultMaxBatchSize)
	require.Nil(t, evs)
	var fes FieldErrors
	require.ErrorAs(t, err, &fes)
	require.Equal(t, FieldErrors{
		fe("[0].event_id", ReasonDuplicate, "is the same as [2].event_id; event_ids in a batch must be distinct"),
		fe("[1].event_id", ReasonDuplicate, "is the same as [5].event_id; event_ids in a batch must be distinct"),
		fe("[2].version", ReasonRequired, msgRequired),
		fe("[2].event_id", ReasonDuplicate, "is the same as [0].event_id; event_ids in a batch must be distinct"),
		fe("[4].event_id", ReasonDuplicate, "is the same as [0].event_id; event_ids in a batch must be distinct"),
		fe("[5].event_id", ReasonDuplicate, "is the same as [1].event_id; event_ids in a batch must be distinct"),
	}, fes)
	require.Equal(t, "event_id", fes[0].Name())

	// Distinct ids, and events without one, are no duplicates.
	evs, err = r.ParseEventBatch(batch(object(baseEvent, "event_id", a), object(baseEvent, "event_id", b),
		object(baseEvent, "", ""), object(baseEvent, "", "")), acceptedAt, DefaultMaxBatchSize)
	require.NoError(t, err)
	require.Len(t, evs, 4)
}
