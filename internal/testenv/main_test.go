package testenv_test

import (
	"os"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// TestMain is in the external test package: testmain imports testenv. The
// tests start the services they test themselves.
func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "testenv tests", 0, nil))
}
