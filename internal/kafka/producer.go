package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/dnwe/otelsarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/backoff"
)

// ErrUnavailable is wrapped by every error that means "Kafka did not take
// the records": callers answer 503 and the client retries.
var ErrUnavailable = errors.New("kafka unavailable")

// Record is one record to publish.
type Record struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
}

// PublishError says how much of a Publish call failed. Uncertain is set when
// PublishTimeout expired before the producer answered: those records may
// still be written, so clients must retry with the same ids. Refused is set
// when the brokers refused the records for what they are (too large,
// malformed): sending them again unchanged cannot succeed.
type PublishError struct {
	Total, Failed int
	Uncertain     bool
	Refused       bool
	Err           error
}

// Retriable reports whether err, from a publish, means Kafka could not take
// the records now but may take the same records later: no connection, no
// acknowledgement in time, no leader, too few in-sync replicas. It is false
// for records the brokers refused (PublishError.Refused) and for errors
// that are not a PublishError (a message the publisher cannot encode), so
// that a record no retry can deliver is never kept for one (internal/spool).
func Retriable(err error) bool {
	var perr *PublishError
	return errors.As(err, &perr) && !perr.Refused
}

// refused reports whether the records were refused for what they are, not
// for the cluster's state: by the brokers, or by sarama before sending (a
// record over Producer.MaxMessageBytes is a ConfigurationError).
func refused(err error) bool {
	var cerr sarama.ConfigurationError
	if errors.As(err, &cerr) {
		return true
	}
	for _, kerr := range []sarama.KError{sarama.ErrInvalidMessage, sarama.ErrMessageSizeTooLarge,
		sarama.ErrMessageSetSizeTooLarge, sarama.ErrInvalidTimestamp, sarama.ErrInvalidRecord} {
		if errors.Is(err, kerr) {
			return true
		}
	}
	return false
}

func (e *PublishError) Error() string {
	if e.Uncertain {
		return fmt.Sprintf("publish %d records: no acknowledgement in time: %v", e.Total, e.Err)
	}
	return fmt.Sprintf("publish: %d of %d records failed: %v", e.Failed, e.Total, e.Err)
}

// Unwrap makes every PublishError an ErrUnavailable and keeps the cause.
func (e *PublishError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Producer publishes records and returns once every one is acknowledged by
// all in-sync replicas. It connects in the background (Connect), so the API
// can start, report itself not ready and answer 503 while Kafka is down.
type Producer struct {
	cfg    Config
	sc     *sarama.Config
	topics []Topic
	log    *zap.Logger

	conn      atomic.Pointer[connection]
	closeOnce sync.Once
	// topicsMissing wakes KeepTopics (one pending signal at most).
	topicsMissing chan struct{}
	// traced wraps the sarama producer in otelsarama's (WithOTELTracer).
	traced bool

	connected *prometheus.GaugeVec
	duration  *prometheus.HistogramVec
	records   *prometheus.CounterVec
	// series caches the series of each topic published to (topicMetrics).
	series sync.Map
}

// connection is a connected producer. Sends share one asynchronous sarama
// producer, whose acknowledgements one goroutine (acknowledge) hands back
// to the send each message belongs to (its Metadata): a SyncProducer
// would cost every request a goroutine of its own, and sarama's
// per-message expectation channels, for the same batching (sarama gathers
// the messages of concurrent sends into one produce request either way).
type connection struct {
	client   sarama.Client
	producer sarama.AsyncProducer
	// acked is closed once acknowledge has returned: sarama has answered
	// for every message handed to it.
	acked chan struct{}
}

// pending is one send's messages awaiting acknowledgement. Only the
// connection's acknowledge goroutine touches left and failed; all is
// closed when the last message is answered, after which the send reads
// failed.
type pending struct {
	left   int
	failed sarama.ProducerErrors
	all    chan struct{}
}

func (p *pending) answer(perr *sarama.ProducerError) {
	if perr != nil {
		p.failed = append(p.failed, perr)
	}
	if p.left--; p.left == 0 {
		close(p.all)
	}
}

// acknowledge answers each message's send until sarama has closed both
// channels (after AsyncClose, once every message is answered).
func (c *connection) acknowledge() {
	defer close(c.acked)
	successes, errs := c.producer.Successes(), c.producer.Errors()
	for successes != nil || errs != nil {
		select {
		case m, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			m.Metadata.(*pending).answer(nil)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			e.Msg.Metadata.(*pending).answer(e)
		}
	}
}

// NewProducer validates the configuration; it does not connect.
func NewProducer(cfg Config, topics []Topic, log *zap.Logger, reg prometheus.Registerer, opts ...ProducerOption) (*Producer, error) {
	sc, err := producerConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.PublishTimeout <= 0 {
		return nil, errors.New("kafka: publish timeout must be positive")
	}
	f := promauto.With(reg)
	p := &Producer{
		cfg:           cfg,
		sc:            sc,
		topics:        topics,
		log:           log,
		topicsMissing: make(chan struct{}, 1),
		connected: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_kafka_producer_connected",
			Help: "1 while the producer is connected to Kafka, else 0.",
		}, nil),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditstream_kafka_publish_duration_seconds",
			Help:    "Time from handing records to the producer until all are acknowledged (or failed).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"topic", "result"}),
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_kafka_published_records_total",
			Help: "Records handed to Kafka, by topic and result (acked, failed).",
		}, []string{"topic", "result"}),
	}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Connect dials the brokers, creates missing topics and starts the producer,
// retrying with capped exponential backoff until it succeeds or ctx ends.
func (p *Producer) Connect(ctx context.Context) error {
	retry := backoff.KafkaConnect.New()
	for attempt := 1; ; attempt++ {
		err := p.ConnectOnce()
		if err == nil {
			p.log.Info("kafka producer connected", zap.Strings("brokers", p.cfg.Brokers), zap.Int("attempt", attempt))
			return nil
		}
		p.log.Warn("kafka producer cannot connect, retrying",
			zap.Strings("brokers", p.cfg.Brokers), zap.Int("attempt", attempt), zap.Duration("backoff", retry.Next()), zap.Error(err))
		if !retry.Wait(ctx) {
			return fmt.Errorf("connect kafka: %w", ctx.Err())
		}
	}
}

// ConnectOnce makes one connection attempt, for command-line tools that
// should report an unreachable broker instead of waiting for it.
func (p *Producer) ConnectOnce() error {
	client, err := sarama.NewClient(p.cfg.Brokers, p.sc)
	if err != nil {
		return fmt.Errorf("kafka client: %w", explain(err, p.cfg))
	}
	if _, err := ensureTopics(client, p.topics); err != nil {
		return errors.Join(err, client.Close())
	}
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return errors.Join(fmt.Errorf("kafka producer: %w", err), client.Close())
	}
	if p.traced {
		producer = otelsarama.WrapAsyncProducer(p.sc, producer)
	}
	conn := &connection{client: client, producer: producer, acked: make(chan struct{})}
	go conn.acknowledge()
	p.conn.Store(conn)
	p.connected.WithLabelValues().Set(1)
	return nil
}

// Publish hands all records to the producer at once and waits until every
// one is acknowledged, or PublishTimeout passes. Any failure is a
// *PublishError wrapping ErrUnavailable. ctx is not used to abandon a send
// that is under way: the records' fate must be known before the caller
// answers, and the timeout bounds the wait.
func (p *Producer) Publish(_ context.Context, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	msgs := make([]*sarama.ProducerMessage, len(records))
	// Records of one call may share one header list: it is then converted
	// once, and sarama only reads it. The tracer writes each record's
	// traceparent in place, so then every record gets a list of its own.
	var from []Header
	var headers []sarama.RecordHeader
	for i, r := range records {
		if p.traced || !sameList(r.Headers, from) {
			from, headers = r.Headers, recordHeaders(r.Headers)
		}
		msgs[i] = &sarama.ProducerMessage{
			Topic:   r.Topic,
			Key:     sarama.ByteEncoder(r.Key),
			Value:   sarama.ByteEncoder(r.Value),
			Headers: headers,
		}
	}
	return p.send(msgs)
}

// send is Publish of messages already built: Publish's and the watermill
// Publisher's.
func (p *Producer) send(msgs []*sarama.ProducerMessage) error {
	conn := p.conn.Load()
	if conn == nil {
		p.count(msgs, nil, true)
		return &PublishError{Total: len(msgs), Failed: len(msgs), Err: errors.New("not connected to kafka")}
	}
	start := time.Now()
	timer := time.NewTimer(p.cfg.PublishTimeout)
	defer timer.Stop()
	pd := &pending{left: len(msgs), all: make(chan struct{})}
	timedOut := false
	// Handing a message over blocks while sarama's input is full (the
	// brokers are slow or away): that wait counts against the timeout too.
	for _, m := range msgs {
		m.Metadata = pd
		select {
		case conn.producer.Input() <- m:
			continue
		case <-timer.C:
			timedOut = true
		}
		break
	}
	if !timedOut {
		select {
		case <-pd.all:
		case <-timer.C:
			timedOut = true
		}
	}

	var perr *PublishError
	var failed sarama.ProducerErrors
	switch {
	case timedOut:
		perr = &PublishError{Total: len(msgs), Failed: len(msgs), Uncertain: true,
			Err: fmt.Errorf("no acknowledgement within %s", p.cfg.PublishTimeout)}
	case len(pd.failed) > 0:
		failed = pd.failed
		err := failed[0].Err
		perr = &PublishError{Total: len(msgs), Failed: len(failed), Refused: refused(err), Err: err}
	}
	topic, single := singleTopic(msgs)
	if single {
		// The API's calls: one topic, whose series are looked up once.
		m := p.topicMetrics(topic)
		bad := len(failed)
		if perr != nil && failed == nil {
			bad = len(msgs)
		}
		if perr != nil {
			m.failedDuration.Observe(time.Since(start).Seconds())
		} else {
			m.ackedDuration.Observe(time.Since(start).Seconds())
		}
		if acked := len(msgs) - bad; acked > 0 {
			m.acked.Add(float64(acked))
		}
		if bad > 0 {
			m.failed.Add(float64(bad))
		}
	} else {
		result := "acked"
		if perr != nil {
			result = "failed"
		}
		p.duration.WithLabelValues("mixed", result).Observe(time.Since(start).Seconds())
		p.count(msgs, failed, perr != nil && failed == nil)
	}
	if perr != nil {
		p.noteUnknownTopic(perr.Err)
		return perr
	}
	return nil
}

// sameList reports whether a and b are the same list (not merely equal).
func sameList(a, b []Header) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// count adds each message to the counter of its own topic: failed when it
// is one of failed, or when allFailed; acked otherwise.
func (p *Producer) count(msgs []*sarama.ProducerMessage, failed sarama.ProducerErrors, allFailed bool) {
	total := make(map[string]int)
	bad := make(map[string]int)
	for _, m := range msgs {
		total[m.Topic]++
		if allFailed {
			bad[m.Topic]++
		}
	}
	for _, f := range failed {
		bad[f.Msg.Topic]++
	}
	for topic, n := range total {
		if acked := n - bad[topic]; acked > 0 {
			p.records.WithLabelValues(topic, "acked").Add(float64(acked))
		}
		if bad[topic] > 0 {
			p.records.WithLabelValues(topic, "failed").Add(float64(bad[topic]))
		}
	}
}

// singleTopic returns the messages' topic, and whether they all have it;
// the latency histogram labels a call that spans several (the replayer's)
// "mixed".
func singleTopic(msgs []*sarama.ProducerMessage) (string, bool) {
	t := msgs[0].Topic
	for _, m := range msgs[1:] {
		if m.Topic != t {
			return "", false
		}
	}
	return t, true
}

// topicSeries are the metric series of one topic's publishes.
type topicSeries struct {
	acked, failed                 prometheus.Counter
	ackedDuration, failedDuration prometheus.Observer
}

// topicMetrics returns topic's series, looked up once: every request of
// the API publishes, and a look-up hashes the label values each time.
func (p *Producer) topicMetrics(topic string) *topicSeries {
	if m, ok := p.series.Load(topic); ok {
		return m.(*topicSeries)
	}
	m, _ := p.series.LoadOrStore(topic, &topicSeries{
		acked: p.records.WithLabelValues(topic, "acked"), failed: p.records.WithLabelValues(topic, "failed"),
		ackedDuration: p.duration.WithLabelValues(topic, "acked"), failedDuration: p.duration.WithLabelValues(topic, "failed"),
	})
	return m.(*topicSeries)
}

// Check is the /health probe: it asks the cluster for fresh metadata, which
// needs a live broker.
func (p *Producer) Check(ctx context.Context) error {
	conn := p.conn.Load()
	if conn == nil {
		return errors.New("not connected")
	}
	done := make(chan error, 1)
	go func() { done <- conn.client.RefreshMetadata() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("refresh metadata: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("refresh metadata: %w", ctx.Err())
	}
}

// Close flushes what is buffered, waits for outstanding acknowledgements and
// closes the connection. Call it after the HTTP server has drained.
func (p *Producer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		conn := p.conn.Swap(nil)
		p.connected.WithLabelValues().Set(0)
		if conn == nil {
			return
		}
		// Every message handed over is answered (to its send) before
		// sarama closes its channels.
		conn.producer.AsyncClose()
		<-conn.acked
		err = conn.client.Close()
		if errors.Is(err, sarama.ErrClosedClient) {
			err = nil
		}
	})
	return err
}
