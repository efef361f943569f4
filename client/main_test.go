package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Client starts a goroutine, and the pipeline test child processes
// and a broker: all of them must be gone when the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
