package testenv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBinariesLinkNoTestCode: what operators run links no test code. The
// production binaries link neither the OpenAPI validator (the API tests'
// oracle, internal/api/openapi/openapitest) nor testing nor goleak; devstack
// starts the embedded services from this package, which links neither.
func TestBinariesLinkNoTestCode(t *testing.T) {
	tests := []struct {
		pkgs   []string
		banned []string
	}{
		{
			pkgs:   []string{"./cmd/ingest-api", "./cmd/writer", "./cmd/dlq-replayer"},
			banned: []string{"github.com/getkin/kin-openapi", "testing", "go.uber.org/goleak"},
		},
		{
			pkgs:   []string{"./cmd/devstack"},
			banned: []string{"testing", "go.uber.org/goleak"},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.pkgs, " "), func(t *testing.T) {
			out, err := goCommand(t.Context(), append([]string{"list", "-deps"}, tt.pkgs...)...)
			require.NoError(t, err)
			deps := strings.Fields(string(out))
			require.Contains(t, deps, "context", "go list -deps lists the standard library too")
			var linked []string
			for _, dep := range deps {
				for _, b := range tt.banned {
					if dep == b || strings.HasPrefix(dep, b+"/") {
						linked = append(linked, dep)
					}
				}
			}
			require.Empty(t, linked, "test code linked into %s", strings.Join(tt.pkgs, " "))
		})
	}
}
