package audit

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLegalHold(t *testing.T) {
	long := strings.Repeat("r", MaxHoldReason+1)
	tests := []struct {
		name, body string
		want       LegalHold
		errs       FieldErrors
		bodyErr    error
	}{
		{"valid", `{"correlation_id":"rr-1","reason":"litigation 42","extra":1}`, LegalHold{"rr-1", "litigation 42"}, nil, nil},
		{"reason at the limit", `{"correlation_id":"rr-1","reason":"` + long[1:] + `"}`, LegalHold{"rr-1", long[1:]}, nil, nil},
		{"missing reason", `{"correlation_id":"rr-1"}`, LegalHold{}, FieldErrors{fe("reason", ReasonRequired, msgRequired)}, nil},
		{"empty reason", `{"correlation_id":"rr-1","reason":""}`, LegalHold{}, FieldErrors{fe("reason", ReasonEmpty, msgEmpty)}, nil},
		{"reason of 10 KB", `{"correlation_id":"rr-1","reason":"` + strings.Repeat("x", 10<<10) + `"}`, LegalHold{},
			FieldErrors{fe("reason", ReasonTooLong, "must be at most 1000 characters")}, nil},
		{"reason over the limit", `{"correlation_id":"rr-1","reason":"` + long + `"}`, LegalHold{},
			FieldErrors{fe("reason", ReasonTooLong, "must be at most 1000 characters")}, nil},
		{"everything wrong", `{"correlation_id":7,"reason":null}`, LegalHold{},
			FieldErrors{fe("correlation_id", ReasonType, msgString), fe("reason", ReasonRequired, msgRequired)}, nil},
		{"correlation_id too long", `{"correlation_id":"` + strings.Repeat("c", 256) + `","reason":"r"}`, LegalHold{},
			FieldErrors{fe("correlation_id", ReasonTooLong, "must be at most 255 characters")}, nil},
		{"NUL in an unknown member", `{"correlation_id":"c","reason":"r","x":"\u0000"}`, LegalHold{}, nil, ErrNUL},
		{"not an object", `["c"]`, LegalHold{}, nil, ErrNotObject},
		{"not JSON", `{"correlation_id":`, LegalHold{}, nil, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLegalHold([]byte(tc.body))
			switch {
			case tc.bodyErr != nil:
				require.ErrorIs(t, err, tc.bodyErr)
			case tc.errs != nil:
				var fes FieldErrors
				require.ErrorAs(t, err, &fes)
				require.Equal(t, tc.errs, fes)
			default:
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestParseHoldRelease(t *testing.T) {
	reason, err := ParseHoldRelease([]byte(`{"release_reason":"case closed"}`))
	require.NoError(t, err)
	require.Equal(t, "case closed", reason)
	for body, want := range map[string]FieldErrors{
		`{}`: {fe("release_reason", ReasonRequired, msgRequired)},
		`{"release_reason":"` + strings.Repeat("x", 10<<10) + `"}`: {fe("release_reason", ReasonTooLong, "must be at most 1000 characters")},
		`{"reason":"the placement's name"}`:                        {fe("release_reason", ReasonRequired, msgRequired)},
	} {
		_, err := ParseHoldRelease([]byte(body))
		var fes FieldErrors
		require.ErrorAs(t, err, &fes, body)
		require.Equal(t, want, fes)
	}
}

func TestCheckCorrelationID(t *testing.T) {
	require.NoError(t, CheckCorrelationID("rr-2025/001 é"))
	for in, want := range map[string]FieldError{
		"":                       fe("correlation_id", ReasonEmpty, msgEmpty),
		strings.Repeat("c", 256): fe("correlation_id", ReasonTooLong, "must be at most 255 characters"),
		"a\x00b":                 fe("correlation_id", ReasonNUL, msgNUL),
		"a\xffb":                 fe("correlation_id", ReasonUTF8, msgUTF8),
	} {
		var fes FieldErrors
		require.ErrorAs(t, CheckCorrelationID(in), &fes, "%q", in)
		require.Equal(t, FieldErrors{want}, fes)
	}
}
