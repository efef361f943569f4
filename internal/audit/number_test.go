package audit

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNumberFits holds the verdicts PostgreSQL 15's jsonb input gave for
// each number (SELECT '{"a": N}'::jsonb): numeric keeps at most 131072
// digits before the decimal point and a display scale of at most 16383,
// and refuses exponents of 1073741823 or more even for zero.
func TestNumberFits(t *testing.T) {
	zeros := strings.Repeat("0", 131071)
	tests := []struct {
		num string
		ok  bool
	}{
		{"0", true}, {"-0", true}, {"12", true}, {"-1.5", true}, {"2.5e10", true}, {"1E+2", true},
		{"1e131071", true}, {"9.9e131071", true}, {"1e131072", false}, {"-1e131072", false}, {"1e200000", false},
		{"1" + zeros, true}, {"1" + zeros + "0", false}, {"1" + zeros + "00e-2", true},
		{"12345678901234567890e131052", true}, {"12345678901234567890e131053", false},
		{"1e-16383", true}, {"1e-16384", false}, {"1.5e-16382", true}, {"1.5e-16383", false},
		{"100e-16385", false}, {"0.0001e-16379", true}, {"0.0001e-16380", false},
		{"0." + strings.Repeat("0", 16383), true}, {"0." + strings.Repeat("0", 16384), false},
		{"0.0e-16382", true}, {"0.0e-16383", false}, {"0.00000e5", true},
		{"0e200000", true}, {"0e-200000", false}, {"0e1073741822", true}, {"0e1073741823", false},
		{"0e2000000000", false}, {"0e00000000000000000001", true}, {"1e99999999999999999999", false},
	}
	for _, tc := range tests {
		name := tc.num
		if len(name) > 40 {
			name = name[:20] + "…" + name[len(name)-10:]
		}
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.ok, numberFits([]byte(tc.num)))
			require.Equal(t, tc.ok, numbersFit([]byte(`{"a":[true,"1e999999",`+tc.num+`]}`)), "inside an object")
		})
	}
}
