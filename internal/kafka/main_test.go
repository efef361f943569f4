package kafka

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/auditstream/auditstream/internal/testenv"
)

// TestMain checks that a closed producer leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testenv.LeakOptions()...)
}
