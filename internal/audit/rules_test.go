package audit

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRulesValidateCategoryFitsItsColumn: event_category is varchar(100),
// so a configured category of 101 characters would be accepted by
// validation and then refused by every COPY of its events.
func TestRulesValidateCategoryFitsItsColumn(t *testing.T) {
	tests := []struct {
		name     string
		category string
		ok       bool
	}{
		{"100 ASCII characters", strings.Repeat("c", 100), true},
		{"100 multi-byte characters", strings.Repeat("é", 100), true},
		{"101 characters", strings.Repeat("c", 101), false},
		{"255 characters", strings.Repeat("c", 255), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := DefaultRules()
			r.Categories = append(r.Categories, tc.category)
			err := r.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "at most 100 characters")
		})
	}
}
