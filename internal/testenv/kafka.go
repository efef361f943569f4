package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvKafkaBrokers names the variable that points tests at an existing
// cluster. It matches the binaries' setting so `make dev` and tests read the
// same environment; the harness has no flags of its own, which is why it reads
// the environment here rather than through internal/config.
const EnvKafkaBrokers = "KAFKA_BROKERS"

// Kafka is a Kafka-protocol cluster for tests: kfake in-process, or an
// existing cluster named by KAFKA_BROKERS.
type Kafka struct {
	brokers []string
	cluster *kfake.Cluster // nil for an external cluster
	client  *kgo.Client    // backs admin
	admin   *kadm.Client

	closeOnce sync.Once
}

// StartKafka returns a cluster with the given topics (name → partitions).
// With KAFKA_BROKERS set it uses that cluster and creates the topics there;
// otherwise it starts a one-broker kfake cluster on a free 127.0.0.1 port.
func StartKafka(ctx context.Context, topics map[string]int32) (*Kafka, error) {
	if env := os.Getenv(EnvKafkaBrokers); env != "" {
		var brokers []string
		for b := range strings.SplitSeq(env, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		return connectKafka(ctx, brokers, topics)
	}
	return startEmbeddedKafka(topics)
}

func startEmbeddedKafka(topics map[string]int32) (*Kafka, error) {
	opts := []kfake.Opt{
		// One broker: every partition has one leader and the outage a
		// test simulates with Close is total, as a test expects.
		kfake.NumBrokers(1),
		// Apache Kafka's num.partitions default (kfake's is 10), for a
		// topic created without a partition count.
		kfake.DefaultNumPartitions(1),
	}
	for name, partitions := range topics {
		opts = append(opts, kfake.SeedTopics(partitions, name))
	}
	// With no Ports option kfake listens on 127.0.0.1:0, so the kernel
	// picks a free port and parallel test binaries never collide.
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	k, err := newKafka(cluster.ListenAddrs(), cluster)
	if err != nil {
		cluster.Close()
		return nil, err
	}
	return k, nil
}

func connectKafka(ctx context.Context, brokers []string, topics map[string]int32) (*Kafka, error) {
	k, err := newKafka(brokers, nil)
	if err != nil {
		return nil, err
	}
	if err := k.CreateTopics(ctx, topics); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

func newKafka(brokers []string, cluster *kfake.Cluster) (*Kafka, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("kafka admin client for %v: %w", brokers, err)
	}
	return &Kafka{
		brokers: brokers,
		cluster: cluster,
		client:  client,
		admin:   kadm.NewClient(client),
	}, nil
}

// Brokers returns the bootstrap addresses (host:port).
func (k *Kafka) Brokers() []string {
	return append([]string(nil), k.brokers...)
}

// CreateTopics creates the given topics (name → partitions) with the
// cluster's default replication factor. Topics that already exist are left
// as they are, so tests sharing an external cluster can ask for the same ones.
func (k *Kafka) CreateTopics(ctx context.Context, topics map[string]int32) error {
	for name, partitions := range topics {
		// -1 replication factor: the broker's default, which works on
		// kfake and on a single-node or a production-like cluster.
		resp, err := k.admin.CreateTopic(ctx, partitions, -1, nil, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %q: %w", name, err)
		}
	}
	return nil
}

// Close releases the clients and, for the embedded cluster, shuts the broker
// down: its listener closes and open connections are dropped, so clients see
// "connection refused" at once instead of hanging. Records are lost; a test
// simulating an outage uses its own Kafka and closes it. An external cluster
// is left running. Close is idempotent.
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		k.client.Close()
		if k.cluster != nil {
			k.cluster.Close()
		}
	})
	return nil
}

// ConsumeAll reads topic from the start of every partition until it has n
// records, and returns them in the order fetched (per-partition order is
// kept; the interleaving of partitions is not defined). It gives up when ctx
// ends, returning what it read so far with the context's error. It uses no
// consumer group and commits nothing, so it never disturbs the code under test.
func ConsumeAll(ctx context.Context, brokers []string, topic string, n int) ([]*kgo.Record, error) {
	client, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, fmt.Errorf("consume %q: %w", topic, err)
	}
	defer client.Close()

	records := make([]*kgo.Record, 0, n)
	for len(records) < n {
		fetches := client.PollRecords(ctx, n-len(records))
		if err := ctx.Err(); err != nil {
			return records, fmt.Errorf("consume %q: read %d of %d records: %w", topic, len(records), n, err)
		}
		var fatal error
		fetches.EachError(func(_ string, _ int32, err error) {
			// kgo retries retriable errors itself and only reports
			// them; a topic a producer has not created yet is one.
			if !kerr.IsRetriable(err) && !errors.Is(err, kerr.UnknownTopicOrPartition) {
				fatal = errors.Join(fatal, err)
			}
		})
		if fatal != nil {
			return records, fmt.Errorf("consume %q: %w", topic, fatal)
		}
		records = append(records, fetches.Records()...)
	}
	return records, nil
}
