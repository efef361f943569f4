package client_test

import (
	"os"
	"testing"

	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// TestMain checks that every Client's goroutine, and the broker and child
// processes of the pipeline test, are gone when the tests end.
func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "client tests", 0, nil))
}
