package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
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
// malformed): sending them again unchanged cannot succeed; TooLarge when
// that is their size (over Config.MaxMessageBytes or the topic's
// max.message.bytes).
type PublishError struct {
	Total, Failed int
	Uncertain     bool
	Refused       bool
	TooLarge      bool
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

// tooLarge reports a record refused for its size: by the brokers, or by
// sarama before sending (over Producer.MaxMessageBytes, which sarama
// reports as a ConfigurationError; the configuration itself is checked
// when the producer is built, so at send time that error means the size).
func tooLarge(err error) bool {
	var cerr sarama.ConfigurationError
	return errors.As(err, &cerr) || errors.Is(err, sarama.ErrMessageSizeTooLarge) || errors.Is(err, sarama.ErrMessageSetSizeTooLarge)
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
	// tracer wraps the sarama producer when tracing is on (WithOTELTracer).
	tracer wmkafka.SaramaTracer

	connected *prometheus.GaugeVec
	duration  *prometheus.HistogramVec
	records   *prometheus.CounterVec
	// series caches each topic label's series: resolving labels hashes
	// them under a lock, and every API request publishes.
	series sync.Map // topic label -> *topicSeries
}

type topicSeries struct {
	acked, failed     prometheus.Counter
	ackedIn, failedIn prometheus.Observer
}

func (p *Producer) seriesOf(topic string) *topicSeries {
	if s, ok := p.series.Load(topic); ok {
		return s.(*topicSeries)
	}
	s, _ := p.series.LoadOrStore(topic, &topicSeries{
		acked: p.records.WithLabelValues(topic, "acked"), failed: p.records.WithLabelValues(topic, "failed"),
		ackedIn: p.duration.WithLabelValues(topic, "acked"), failedIn: p.duration.WithLabelValues(topic, "failed"),
	})
	return s.(*topicSeries)
}

type connection struct {
	client   sarama.Client
	producer sarama.SyncProducer
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
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return errors.Join(fmt.Errorf("kafka producer: %w", err), client.Close())
	}
	if p.tracer != nil {
		producer = p.tracer.WrapSyncProducer(p.sc, producer)
	}
	p.conn.Store(&connection{client: client, producer: producer})
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
		if p.tracer != nil || !sameList(r.Headers, from) {
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
	done := make(chan error, 1)
	go func() {
		// SendMessages spends a goroutine and a channel on each call,
		// which one record (every single-event request) does not need.
		if len(msgs) == 1 {
			_, _, err := conn.producer.SendMessage(msgs[0])
			if err != nil {
				err = sarama.ProducerErrors{{Msg: msgs[0], Err: err}}
			}
			done <- err
			return
		}
		done <- conn.producer.SendMessages(msgs)
	}()
	timer := time.NewTimer(p.cfg.PublishTimeout)
	defer timer.Stop()

	var perr *PublishError
	var failed sarama.ProducerErrors
	select {
	case err := <-done:
		if err != nil {
			n := len(msgs)
			if errors.As(err, &failed) {
				n = len(failed)
				err = failed[0].Err
			}
			perr = &PublishError{Total: len(msgs), Failed: n, Refused: refused(err), TooLarge: tooLarge(err), Err: err}
		}
	case <-timer.C:
		perr = &PublishError{Total: len(msgs), Failed: len(msgs), Uncertain: true,
			Err: fmt.Errorf("no acknowledgement within %s", p.cfg.PublishTimeout)}
	}
	series := p.seriesOf(topicLabel(msgs))
	took := series.ackedIn
	if perr != nil {
		took = series.failedIn
	}
	took.Observe(time.Since(start).Seconds())
	p.count(msgs, failed, perr != nil && failed == nil)
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
	if t := topicLabel(msgs); t != "mixed" {
		// One topic, every call of the API: no maps.
		bad := len(failed)
		if allFailed {
			bad = len(msgs)
		}
		p.add(t, len(msgs)-bad, bad)
		return
	}
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
		p.add(topic, n-bad[topic], bad[topic])
	}
}

func (p *Producer) add(topic string, acked, failed int) {
	s := p.seriesOf(topic)
	if acked > 0 {
		s.acked.Add(float64(acked))
	}
	if failed > 0 {
		s.failed.Add(float64(failed))
	}
}

// topicLabel is the topic of a publish for the latency histogram: the
// messages' topic, or "mixed" when a call spans several (the replayer's).
func topicLabel(msgs []*sarama.ProducerMessage) string {
	t := msgs[0].Topic
	for _, m := range msgs[1:] {
		if m.Topic != t {
			return "mixed"
		}
	}
	return t
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
		err = errors.Join(conn.producer.Close(), conn.client.Close())
		if errors.Is(err, sarama.ErrClosedClient) {
			err = nil
		}
	})
	return err
}
