package testmain

import "go.uber.org/goleak"

// LeakOptions are the goroutines a package's leak check must ignore: ones
// sarama starts and that are not the code under test's to stop.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		// sarama's metrics registry (go-metrics) starts one process-wide
		// meter goroutine on first use and never stops it: in tests that
		// use sarama without internal/kafka, which turns the metrics off.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		// After a broker outage, sarama's partition circuit breaker sleeps
		// out its 10 s open state; it ends by itself.
		goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"),
	}
}
