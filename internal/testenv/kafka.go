package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
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
	creds   *KafkaCredentials
	tls     *tls.Config // the harness's own clients' side of creds
	client  *kgo.Client // backs admin
	admin   *kadm.Client

	// For StartRestartableKafka: what a restart needs.
	mu      sync.Mutex
	topics  map[string]int32
	dataDir string

	closeOnce sync.Once
}

// SecureKafka is the security a broker of StartSecureKafka requires.
type SecureKafka struct {
	// Dir receives the certificates: the CA's, the broker's and the
	// client's (a test's TempDir).
	Dir string
	// Mechanism is the SASL mechanism clients must authenticate with:
	// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	// MutualTLS requires a client certificate signed by the broker's CA.
	MutualTLS bool
}

// KafkaCredentials are what a client needs to connect to a secured broker.
type KafkaCredentials struct {
	// CAFile is the PEM certificate of the CA that signed the broker's.
	CAFile string
	// Client is the client certificate, with MutualTLS; else zero.
	Client KeyPair
	// Mechanism, Username and Password are the SASL user.
	Mechanism, Username, Password string
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
	return startEmbeddedKafka(topics, nil, nil)
}

// StartSecureKafka starts a one-broker kfake cluster that accepts TLS
// connections only, with a certificate for the loopback addresses from a
// CA made for it, and requires SASL (and a client certificate, with
// MutualTLS). It is always embedded: KAFKA_BROKERS names a cluster whose
// security the harness cannot choose.
func StartSecureKafka(topics map[string]int32, sec SecureKafka) (*Kafka, error) {
	ca, err := NewCA(sec.Dir, "kafka")
	if err != nil {
		return nil, err
	}
	server, err := ca.IssueServer("kafka-broker", Loopback...)
	if err != nil {
		return nil, err
	}
	creds := &KafkaCredentials{CAFile: ca.CertFile(), Mechanism: sec.Mechanism, Username: "auditstream", Password: randomHex(16)}
	listen := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{server.TLS}}
	dial := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool()}
	if sec.MutualTLS {
		if creds.Client, err = ca.IssueClient("kafka-client"); err != nil {
			return nil, err
		}
		listen.ClientAuth, listen.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool()
		dial.Certificates = []tls.Certificate{creds.Client.TLS}
	}
	k, err := startEmbeddedKafka(topics, creds, dial,
		kfake.TLS(listen), kfake.EnableSASL(), kfake.Superuser(creds.Mechanism, creds.Username, creds.Password))
	if err != nil {
		return nil, err
	}
	return k, nil
}

// StartRestartableKafka starts a one-broker kfake cluster that Stop takes
// down and Restart brings back on the same address, for tests of outages
// that clients must ride out. Its records, topics and committed offsets
// are kept in dataDir across a Restart, as a real broker keeps them;
// RestartEmpty brings back a broker that lost them, with the topics
// created anew. It is always embedded.
func StartRestartableKafka(topics map[string]int32, dataDir string) (*Kafka, error) {
	k, err := startEmbeddedKafka(topics, nil, nil, kfake.DataDir(dataDir))
	if err != nil {
		return nil, err
	}
	k.topics, k.dataDir = topics, dataDir
	return k, nil
}

// Stop shuts a broker of StartRestartableKafka down: its listener closes
// and its connections drop, so clients see the outage at once.
func (k *Kafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cluster.Close()
}

// Restart stops the broker, if running, and starts it again on the same
// address with what it had stored.
func (k *Kafka) Restart() error { return k.restart(false) }

// RestartEmpty is Restart of a broker that lost everything it had stored,
// as the embedded broker of `make dev` does: the topics are created anew.
func (k *Kafka) RestartEmpty() error { return k.restart(true) }

func (k *Kafka) restart(empty bool) error {
	opts := []kfake.Opt{kfake.DataDir(k.dataDir)}
	for name, partitions := range k.topics {
		opts = append(opts, kfake.SeedTopics(partitions, name))
	}
	return k.replaceCluster(func() error {
		if !empty {
			return nil
		}
		if err := os.RemoveAll(k.dataDir); err != nil {
			return fmt.Errorf("restart embedded kafka: %w", err)
		}
		return nil
	}, opts...)
}

// replaceCluster closes the embedded broker and starts another on the same
// addresses with opts, once prepare has run in between.
func (k *Kafka) replaceCluster(prepare func() error, opts ...kfake.Opt) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cluster.Close()
	if err := prepare(); err != nil {
		return err
	}
	ports := make([]int, len(k.brokers))
	for i, b := range k.brokers {
		_, port, err := net.SplitHostPort(b)
		if err != nil {
			return err
		}
		if ports[i], err = strconv.Atoi(port); err != nil {
			return err
		}
	}
	all := append([]kfake.Opt{kfake.NumBrokers(len(ports)), kfake.DefaultNumPartitions(1), kfake.Ports(ports...)}, opts...)
	cluster, err := kfake.NewCluster(all...)
	if err != nil {
		return fmt.Errorf("restart embedded kafka on %v: %w", k.brokers, err)
	}
	k.cluster = cluster
	return nil
}

func startEmbeddedKafka(topics map[string]int32, creds *KafkaCredentials, dial *tls.Config, extra ...kfake.Opt) (*Kafka, error) {
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
	opts = append(opts, extra...)
	// With no Ports option kfake listens on 127.0.0.1:0, so the kernel
	// picks a free port and parallel test binaries never collide.
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	k, err := newKafka(&Kafka{brokers: cluster.ListenAddrs(), cluster: cluster, creds: creds, tls: dial})
	if err != nil {
		cluster.Close()
		return nil, err
	}
	return k, nil
}

func connectKafka(ctx context.Context, brokers []string, topics map[string]int32) (*Kafka, error) {
	k, err := newKafka(&Kafka{brokers: brokers})
	if err != nil {
		return nil, err
	}
	if err := k.CreateTopics(ctx, topics); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

func newKafka(k *Kafka) (*Kafka, error) {
	client, err := k.NewClient()
	if err != nil {
		return nil, fmt.Errorf("kafka admin client for %v: %w", k.brokers, err)
	}
	k.client, k.admin = client, kadm.NewClient(client)
	return k, nil
}

// Brokers returns the bootstrap addresses (host:port).
func (k *Kafka) Brokers() []string {
	return append([]string(nil), k.brokers...)
}

// Credentials returns what a client needs to connect to a broker of
// StartSecureKafka; nil for a plaintext one.
func (k *Kafka) Credentials() *KafkaCredentials { return k.creds }

// Env returns the settings of the binaries (KAFKA_BROKERS and, for a
// secured broker, the KAFKA_TLS_* and KAFKA_SASL_* ones) that connect them
// to this cluster, as NAME=value entries for a child's environment.
func (k *Kafka) Env() []string {
	env := []string{"KAFKA_BROKERS=" + strings.Join(k.brokers, ",")}
	c := k.creds
	if c == nil {
		return env
	}
	env = append(env, "KAFKA_TLS_ENABLED=true", "KAFKA_TLS_CA_FILE="+c.CAFile,
		"KAFKA_SASL_MECHANISM="+c.Mechanism, "KAFKA_SASL_USERNAME="+c.Username, "KAFKA_SASL_PASSWORD="+c.Password)
	if c.Client.CertFile != "" {
		env = append(env, "KAFKA_TLS_CERT_FILE="+c.Client.CertFile, "KAFKA_TLS_KEY_FILE="+c.Client.KeyFile)
	}
	return env
}

// NewClient returns a franz-go client of the cluster, with the credentials
// a secured one needs, for a test that produces or reads records the way
// an independent client does. The caller closes it.
func (k *Kafka) NewClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append(k.clientOpts(), opts...)...)
}

func (k *Kafka) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(k.brokers...)}
	if c := k.creds; c != nil {
		opts = append(opts, kgo.DialTLSConfig(k.tls.Clone()), kgo.SASL(saslMechanism(c.Mechanism, c.Username, c.Password)))
	}
	return opts
}

// saslMechanism is franz-go's client side of a kfake SASL user.
func saslMechanism(name, user, password string) sasl.Mechanism {
	switch name {
	case "PLAIN":
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	default:
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	}
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
		k.mu.Lock()
		defer k.mu.Unlock()
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
	return consumeAll(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, topic, n)
}

// ConsumeAll is the package's ConsumeAll on this cluster, with the
// credentials a secured one needs.
func (k *Kafka) ConsumeAll(ctx context.Context, topic string, n int) ([]*kgo.Record, error) {
	return consumeAll(ctx, k.clientOpts(), topic, n)
}

func consumeAll(ctx context.Context, opts []kgo.Opt, topic string, n int) ([]*kgo.Record, error) {
	client, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
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
