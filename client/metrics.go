package client

// Metrics receives the client's counters of events (not of notifications,
// whose Notify returns its outcome), to export them with whatever
// metrics library the service uses (the package imports none). Its methods
// are called from the client's sending goroutine and must return quickly.
//
// With Prometheus, for instance: Sent, Retried and Failed add to counters
// such as myservice_audit_events_sent_total, and QueueDepth sets a gauge.
type Metrics interface {
	// Sent counts events the server accepted (201 or 202).
	Sent(events int)
	// Retried is called before a batch request that failed with err is
	// sent again; events is the number it carries. err is a *Problem when
	// the server answered (429, 503, another 5xx), else a network or
	// timeout error.
	Retried(events int, err error)
	// Failed counts events handed to the failure handler: they will
	// never be delivered by this client.
	Failed(events int)
	// QueueDepth is the number of events held (buffered or in flight,
	// as Pending), sampled before every request.
	QueueDepth(events int)
}

type nopMetrics struct{}

func (nopMetrics) Sent(int)           {}
func (nopMetrics) Retried(int, error) {}
func (nopMetrics) Failed(int)         {}
func (nopMetrics) QueueDepth(int)     {}
