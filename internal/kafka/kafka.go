// Package kafka owns auditstream's side of Kafka, and is the only package
// that speaks sarama: the configuration every client shares (baseConfig,
// which sets transport security, TLS and SASL, once for every client), topic
// creation at start-up, the record and header types the other packages use,
// and every client:
//   - Producer, acknowledged, that the replayer moves records with, and
//     Publisher, watermill's message.Publisher over it, that the API
//     publishes through and the writer dead-letters through;
//   - Consumer and ConsumerGroup, the writer's group membership;
//   - Reader, the replayer's bounded reads, and Member, its consumer group
//     membership: each daemon or replay moves only the partitions it is
//     given, and commits them fenced by its generation.
//
// # watermill
//
// The design names watermill (github.com/ThreeDotsLabs/watermill v1.5.3)
// and watermill-kafka (github.com/ThreeDotsLabs/watermill-kafka/v3
// v3.1.4). They are used where they fit without losing a figure:
//
//   - The publishing seam is watermill's message.Publisher, so decorators
//     (a spool, a circuit breaker) wrap it without knowing Kafka. The
//     implementation is ours, not watermill-kafka's Publisher: that one
//     calls SendMessage once per message, one broker round trip after
//     another (batching them, watermill-kafka PR #28, was never merged),
//     while a batch request must hand all its records to the producer at
//     once and wait for every acknowledgement together (SendMessages), so
//     that 5,000 records cost a few round trips, not 5,000. Ours keeps the
//     Producer's semantics exactly: acks=all, PublishTimeout, and a
//     *PublishError that says how much failed or that the outcome is
//     uncertain.
//   - watermill-kafka's DefaultMarshaler is replaced by ours (NewMessage,
//     RecordOf): it adds a _watermill_message_uuid header to every record
//     and writes Metadata, a map, as headers in map order, one per key,
//     with no null values, while SPEC 3 fixes the API's headers and SPEC
//     6.1 keeps a dead letter's headers byte for byte, in order, repeated
//     keys included. Ours carries the key and the ordered header list,
//     encoded, in one metadata entry of its own, so a decorator that
//     stores messages keeps the record by keeping the metadata; the
//     message UUID (the event id) is not published.
//   - With tracing on, watermill-kafka's OpenTelemetry sarama tracer
//     (NewOTELSaramaTracer, github.com/dnwe/otelsarama) wraps the API's
//     producer (WithOTELTracer); not the writer's, whose dead letters keep
//     the original traceparent byte for byte.
//   - Reading stays on sarama: the writer's consumer group and the
//     replayer's Reader. watermill-kafka's subscriber hands over one
//     message per partition and waits for its ack before the next (batch
//     consumption exists only in the unmerged PR #29), so it cannot gather
//     a batch while keeping at-least-once delivery; its
//     components/requeuer moves one message per partition per delay, with
//     no bounded span (a pass reads what was there when it started), no
//     parking and no filters, which SPEC 6.2 needs.
package kafka

import (
	"fmt"
	"time"

	"github.com/IBM/sarama"
	metrics "github.com/rcrowley/go-metrics"
)

// sarama measures every request into go-metrics histograms and meters
// (with a lock and an exponentially decaying sample each), which nothing
// here reads: the binaries export their own Prometheus metrics. Off, as
// sarama's documentation says to: it was 2 to 3 % of ingest-api's CPU per
// request.
func init() { metrics.UseNilMetrics = true }

// Header names set by the ingest API (SPEC 3, 8.3).
const (
	HeaderContentType = "content-type"
	HeaderSource      = "auditstream-source"
	// HeaderPrincipal is the authenticated caller the API published a
	// record for; HeaderPrincipalSig proves that the API set it
	// (internal/provenance).
	HeaderPrincipal    = "auditstream-principal"
	HeaderPrincipalSig = "auditstream-principal-sig"
)

// Config is the connection shared by producers, consumers and admin clients.
type Config struct {
	Brokers  []string
	Version  string // e.g. "3.6.0"
	ClientID string
	// PublishTimeout bounds a Publish call end to end.
	PublishTimeout time.Duration
	// MaxMessageBytes bounds what a producer sends to one partition in
	// one request, and so the largest record; zero is
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// TLS and SASL secure every connection of every client.
	TLS  TLS
	SASL SASL
}

// DefaultMaxMessageBytes stays under Kafka's default max.message.bytes
// (1048588), leaving room for a batch's own framing.
const DefaultMaxMessageBytes = 1_000_000

// Topic is a topic the binaries create when it is missing.
type Topic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	// Config holds topic-level settings to create it with (e.g.
	// retention.ms); nil leaves the broker's defaults.
	Config map[string]string
}

// baseConfig is what every client shares: protocol version, client id,
// transport security, and network timeouts short enough that an
// unreachable broker turns into an error within seconds instead of a hung
// call.
func baseConfig(c Config) (*sarama.Config, error) {
	version, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return nil, fmt.Errorf("kafka version %q: %w", c.Version, err)
	}
	sc := sarama.NewConfig()
	sc.Version = version
	sc.ClientID = c.ClientID
	sc.Net.DialTimeout = 3 * time.Second
	sc.Net.ReadTimeout = 10 * time.Second
	sc.Net.WriteTimeout = 10 * time.Second
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Metadata.Timeout = 5 * time.Second
	// A metadata request must never create a topic: the broker would make
	// it with its own defaults (num.partitions) while every binary here
	// creates a missing topic with the configured partition count
	// (ensureTopics), which could never be changed back without moving
	// keys between partitions.
	sc.Metadata.AllowAutoTopicCreation = false
	if err := applySecurity(sc, c); err != nil {
		return nil, err
	}
	return sc, nil
}

// producerConfig builds the producer client configuration: idempotent, and
// waiting for every in-sync replica (acks=all).
func producerConfig(c Config) (*sarama.Config, error) {
	sc, err := baseConfig(c)
	if err != nil {
		return nil, err
	}
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	// The idempotent producer keeps ordering only with one request in flight
	// per broker; sarama enforces it. It applies to the whole client, which
	// is why consumers get a configuration of their own.
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 5
	sc.Producer.Retry.Backoff = 200 * time.Millisecond
	sc.Producer.Timeout = 5 * time.Second
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	// lz4 is cheap on CPU and roughly halves JSON on the wire and on disk.
	sc.Producer.Compression = sarama.CompressionLZ4
	// The producer packs concurrent records for one partition into one
	// batch up to this size, and the broker refuses a batch over the
	// topic's max.message.bytes: above that limit, records that each fit
	// would be refused together (the checkpoints did, several documents
	// at a time).
	sc.Producer.MaxMessageBytes = DefaultMaxMessageBytes
	if c.MaxMessageBytes > 0 {
		sc.Producer.MaxMessageBytes = c.MaxMessageBytes
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("sarama producer config: %w", err)
	}
	return sc, nil
}

// consumerConfig builds the configuration of the clients that read: the
// writer's consumer group and the replayer's Reader. A group commits
// automatically every second, but only offsets the caller has marked, and
// the writer marks a record only once it is stored or dead-lettered: a
// crash replays at most the last second, which the writer's de-duplication
// absorbs. The Reader commits only through its admin client, when told to.
func consumerConfig(c Config) (*sarama.Config, error) {
	sc, err := baseConfig(c)
	if err != nil {
		return nil, err
	}
	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	// A broker answers one request per connection at a time, and offset
	// commits share the connection with the long-polling fetch: a short
	// fetch wait keeps commits (and session ends) from queueing behind it.
	sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	// Fetch sizes and buffers bound what a consumer holds while the database
	// is slower than Kafka: with 4 MiB fetches and 1,024 buffered records per
	// partition the writer pulled whole backlogs into memory (310 MiB peak
	// for 100k records against 215 MiB with 1 MiB and 256). Under the
	// writer's soft heap limit, 512 KiB halves what each fetch decompresses
	// at once: draining 1,000,000 records peaked at 182 MiB against 207, and
	// with fewer collections the drain was faster, not slower (0.86x raw
	// COPY against 0.62x in runs of similar load).
	sc.Consumer.Fetch.Default = 512 << 10
	sc.Consumer.Fetch.Max = 16 << 20
	sc.ChannelBufferSize = 256
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	// A rebalance gives each member this long to end its session (the
	// writer's last flush, bounded by its WRITE_TIMEOUT of 20 s, and the
	// commit) and to join again. The coordinator holds a JoinGroup request
	// until the group has formed, up to this long, so the network read
	// timeout must outlast it, as the Java client allows it 5 s more: with
	// a shorter one every join of a group waiting for a dead member timed
	// out, was retried and timed out again, and the member never got a
	// session (IBM/sarama#2820).
	sc.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	sc.Net.ReadTimeout = sc.Consumer.Group.Rebalance.Timeout + 5*time.Second
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("sarama consumer config: %w", err)
	}
	return sc, nil
}
