package kafka

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a closed producer leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// sarama's metrics registry (go-metrics) starts one process-wide
		// meter goroutine on first use and never stops it.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	)
}
