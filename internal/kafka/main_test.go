package kafka

import (
	"os"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// TestMain checks that a closed producer leaves no goroutine behind. The
// tests start brokers of their own, to break them.
func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "kafka tests", 0, nil))
}
