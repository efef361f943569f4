package service

import (
	"os"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// TestMain checks that a stopped HTTP server leaves no goroutine behind.
func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "service tests", 0, nil))
}
