package telemetry

import (
	"os"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// TestMain checks that the health checks' goroutines end, also the one
// whose check hangs past the probe's timeout once it is released.
func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "telemetry tests", 0, nil))
}
