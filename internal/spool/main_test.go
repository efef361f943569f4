package spool

import (
	"os"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// TestMain checks that a closed Store and a stopped drainer leave no
// goroutine behind.
func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "spool tests", 0, nil))
}
