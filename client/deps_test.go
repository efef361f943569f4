package client_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLinksOnlyWhatServicesNeed: a service importing the client links none
// of the server's dependencies (sarama, gin, pgx, Prometheus, zap), only
// these packages besides the standard library.
func TestLinksOnlyWhatServicesNeed(t *testing.T) {
	allowed := []string{
		"github.com/auditstream/auditstream/client",
		"github.com/auditstream/auditstream/internal/audit",
		"github.com/google/uuid",
		"github.com/cenkalti/backoff/v5",
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "net/http", "go list -deps lists the standard library too")
	var extra []string
	for _, dep := range deps {
		first, _, _ := strings.Cut(dep, "/")
		if !strings.Contains(first, ".") {
			continue // the standard library, vendored parts included
		}
		if !containsPrefix(allowed, dep) {
			extra = append(extra, dep)
		}
	}
	require.Empty(t, extra, "the client links more than it needs")
}

func containsPrefix(prefixes []string, s string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}
