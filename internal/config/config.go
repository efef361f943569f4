// Package config owns every setting of the three binaries: one struct per
// binary, parsed from flags with an environment-variable twin for each
// (12-factor), defaults in the struct tags, and a Validate step run before
// anything starts. No other package reads the environment.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
)

// Kafka is the broker connection and the topic layout shared by all binaries.
type Kafka struct {
	Brokers  []string `name:"kafka-brokers" env:"KAFKA_BROKERS" sep:"," help:"Kafka bootstrap brokers, comma-separated."`
	Version  string   `name:"kafka-version" env:"KAFKA_VERSION" default:"3.6.0" help:"Kafka protocol version the clients speak (the oldest broker version in the cluster)."`
	ClientID string   `name:"kafka-client-id" env:"KAFKA_CLIENT_ID" default:"auditstream" help:"Client id sent to the brokers (visible in broker logs and quotas)."`

	EventsTopic        string `name:"events-topic" env:"EVENTS_TOPIC" default:"audit.events" help:"Topic of audit events."`
	NotificationsTopic string `name:"notifications-topic" env:"NOTIFICATIONS_TOPIC" default:"audit.notifications" help:"Topic of notification audit records."`
	DLQTopic           string `name:"dlq-topic" env:"DLQ_TOPIC" default:"audit.dlq" help:"Dead-letter topic."`
	ParkedTopic        string `name:"parked-topic" env:"PARKED_TOPIC" default:"audit.dlq.parked" help:"Topic of dead letters that exhausted their replays."`

	// 12 partitions lets up to 12 writers share the load and keeps per-key
	// ordering; a topic that already exists is left as it is.
	TopicPartitions int32 `name:"topic-partitions" env:"TOPIC_PARTITIONS" default:"12" help:"Partitions of topics created at start-up."`
	// -1 asks the broker for its default.replication.factor (KIP-464).
	TopicReplication int16 `name:"topic-replication-factor" env:"TOPIC_REPLICATION_FACTOR" default:"-1" help:"Replication factor of topics created at start-up (-1: the broker's default)."`
	// A topic found missing (a cluster rebuilt or restored empty) is
	// created again with the settings above; a publish that finds one
	// unknown looks at once, so the interval only bounds how long a topic
	// nobody writes to stays missing. Ten seconds costs one metadata
	// request per binary.
	TopicCheckInterval time.Duration `name:"topic-check-interval" env:"TOPIC_CHECK_INTERVAL" default:"10s" help:"How often the writer and ingest-api check that their topics exist, creating missing ones with TOPIC_PARTITIONS."`

	// PublishTimeout bounds how long a request waits for Kafka before it is
	// answered 503: long enough to ride out a leader election (a few seconds),
	// short enough that clients do not time out first.
	PublishTimeout time.Duration `name:"publish-timeout" env:"PUBLISH_TIMEOUT" default:"10s" help:"Longest wait for Kafka acknowledgements before a request is answered 503."`

	// The producers pack records for one partition into batches up to
	// this size; it must not exceed what the topics accept, or records
	// that each fit are refused together.
	MaxMessageBytes int `name:"kafka-max-message-bytes" env:"KAFKA_MAX_MESSAGE_BYTES" default:"1000000" help:"Largest batch a producer sends to one partition, and so the largest record (413 above it); at most the topics' max.message.bytes (Kafka's default 1048588)."`

	KafkaSecurity `embed:""`
}

// KafkaSecurity is the transport security of every Kafka client (SPEC 8.5).
// Off by default, as on a broker's plaintext listener; a production cluster
// sets TLS and SASL here.
type KafkaSecurity struct {
	TLSEnabled    bool   `name:"kafka-tls" env:"KAFKA_TLS_ENABLED" help:"Connect to the brokers over TLS (1.2 or later)."`
	TLSCAFile     string `name:"kafka-tls-ca-file" env:"KAFKA_TLS_CA_FILE" placeholder:"PATH" help:"PEM file of the authorities that sign the broker certificates (default: the system's roots)."`
	TLSCertFile   string `name:"kafka-tls-cert-file" env:"KAFKA_TLS_CERT_FILE" placeholder:"PATH" help:"PEM client certificate, for brokers that require mutual TLS (with --kafka-tls-key-file); re-read at every new connection."`
	TLSKeyFile    string `name:"kafka-tls-key-file" env:"KAFKA_TLS_KEY_FILE" placeholder:"PATH" help:"PEM private key of the client certificate."`
	TLSServerName string `name:"kafka-tls-server-name" env:"KAFKA_TLS_SERVER_NAME" placeholder:"NAME" help:"Name the broker certificates must carry, when it differs from the host in KAFKA_BROKERS."`

	SASLMechanism    string       `name:"kafka-sasl-mechanism" env:"KAFKA_SASL_MECHANISM" enum:",PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" default:"" help:"SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)."`
	SASLUsername     string       `name:"kafka-sasl-username" env:"KAFKA_SASL_USERNAME" placeholder:"USER" help:"SASL user name."`
	SASLPassword     kafka.Secret `name:"kafka-sasl-password" env:"KAFKA_SASL_PASSWORD" placeholder:"SECRET" help:"SASL password; prefer --kafka-sasl-password-file, since flags and environments are visible to other processes."`
	SASLPasswordFile string       `name:"kafka-sasl-password-file" env:"KAFKA_SASL_PASSWORD_FILE" placeholder:"PATH" help:"File holding the SASL password (a mounted Secret); a trailing line break is ignored."`
}

// Validate reports combinations that cannot work or would silently do less
// than asked: TLS files without TLS, SASL without its credentials.
func (s KafkaSecurity) Validate() error {
	var errs []error
	if !s.TLSEnabled {
		for name, v := range map[string]string{"KAFKA_TLS_CA_FILE": s.TLSCAFile, "KAFKA_TLS_CERT_FILE": s.TLSCertFile,
			"KAFKA_TLS_KEY_FILE": s.TLSKeyFile, "KAFKA_TLS_SERVER_NAME": s.TLSServerName} {
			if v != "" {
				errs = append(errs, fmt.Errorf("%s is set but KAFKA_TLS_ENABLED is not true", name))
			}
		}
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		errs = append(errs, errors.New("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together: set both or neither"))
	}
	hasPassword := s.SASLPassword != "" || s.SASLPasswordFile != ""
	if s.SASLMechanism == "" {
		if s.SASLUsername != "" || hasPassword {
			errs = append(errs, errors.New("KAFKA_SASL_USERNAME or a password is set but KAFKA_SASL_MECHANISM is empty"))
		}
		return errors.Join(errs...)
	}
	if s.SASLUsername == "" {
		errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM %s needs KAFKA_SASL_USERNAME", s.SASLMechanism))
	}
	switch {
	case !hasPassword:
		errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM %s needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE", s.SASLMechanism))
	case s.SASLPassword != "" && s.SASLPasswordFile != "":
		errs = append(errs, errors.New("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both"))
	}
	return errors.Join(errs...)
}

// Validate reports settings that cannot work.
func (k Kafka) Validate() error {
	errs := []error{k.KafkaSecurity.Validate()}
	if len(k.Brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS (--kafka-brokers) is required"))
	}
	for _, b := range k.Brokers {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, errors.New("KAFKA_BROKERS has an empty entry"))
		}
	}
	if k.TopicPartitions < 1 {
		errs = append(errs, fmt.Errorf("TOPIC_PARTITIONS must be at least 1, got %d", k.TopicPartitions))
	}
	if k.TopicReplication == 0 || k.TopicReplication < -1 {
		errs = append(errs, fmt.Errorf("TOPIC_REPLICATION_FACTOR must be -1 or at least 1, got %d", k.TopicReplication))
	}
	if k.TopicCheckInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("TOPIC_CHECK_INTERVAL must be at least 100ms, got %s", k.TopicCheckInterval))
	}
	if k.PublishTimeout < time.Second {
		errs = append(errs, fmt.Errorf("PUBLISH_TIMEOUT must be at least 1s, got %s", k.PublishTimeout))
	}
	if k.MaxMessageBytes < minMaxMessageBytes {
		errs = append(errs, fmt.Errorf("KAFKA_MAX_MESSAGE_BYTES must be at least %d (a signed checkpoint takes up to %d bytes), got %d",
			minMaxMessageBytes, integrity.MaxCheckpointBytes, k.MaxMessageBytes))
	}
	for name, topic := range map[string]string{"EVENTS_TOPIC": k.EventsTopic, "NOTIFICATIONS_TOPIC": k.NotificationsTopic, "DLQ_TOPIC": k.DLQTopic, "PARKED_TOPIC": k.ParkedTopic} {
		if topic == "" {
			errs = append(errs, fmt.Errorf("%s must not be empty", name))
		}
	}
	return errors.Join(errs...)
}

// Postgres is the database connection.
type Postgres struct {
	URL string `name:"database-url" env:"DATABASE_URL" placeholder:"postgres://..." help:"PostgreSQL connection string (URL or key=value DSN)."`
	// The default is store.DefaultMaxConns (TestDefaultsAreTheOwners
	// checks): a ${var} taken from store would link pgx into dlq-replayer.
	MaxConns int32 `name:"database-max-conns" env:"DATABASE_MAX_CONNS" default:"10" help:"Largest number of pooled connections."`
	Migrate  bool  `name:"migrate" env:"MIGRATE" default:"true" negatable:"" help:"Apply the embedded schema migrations at start-up (under an advisory lock)."`
}

// Validate reports settings that cannot work.
func (p Postgres) Validate() error {
	var errs []error
	if p.URL == "" {
		errs = append(errs, errors.New("DATABASE_URL (--database-url) is required"))
	}
	if p.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("DATABASE_MAX_CONNS must be at least 1, got %d", p.MaxConns))
	}
	return errors.Join(errs...)
}

// Pprof turns on Go's profiler on the metrics listener (METRICS_ADDR, never
// the API's), for a profile of the running binary: off by default, since
// it shows the process's internals to whoever reaches that port.
type Pprof struct {
	Enabled bool `name:"pprof" env:"PPROF_ENABLED" help:"Serve Go's profiler under /debug/pprof/ on METRICS_ADDR (off by default)."`
}

// Log selects the log level and encoding.
type Log struct {
	Level  string `name:"log-level" env:"LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Least severe level logged (debug, info, warn, error)."`
	Format string `name:"log-format" env:"LOG_FORMAT" default:"json" enum:"json,console" help:"Log encoding: json for machines, console for people."`
}

// Parse fills cfg from args and the environment. --help prints every flag
// with its environment variable and exits 0; a usage error exits 2, as the
// shells and scripts that start these binaries expect.
func Parse(cfg any, name, description string, args []string) *kong.Context {
	parser, err := kong.New(cfg,
		kong.Name(name),
		kong.Description(description),
		Vars(),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		// The structs are ours: a broken tag is a bug, reported as a failure.
		fmt.Fprintf(os.Stderr, "%s: invalid configuration model: %v\n", name, err)
		os.Exit(1)
	}
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	return ctx
}

// minMaxMessageBytes leaves a checkpoint document (integrity.MaxCheckpointBytes)
// room for its record's framing and headers.
const minMaxMessageBytes = integrity.MaxCheckpointBytes + 64<<10

// Client returns the connection settings of the Kafka clients.
func (k Kafka) Client() kafka.Config {
	s := k.KafkaSecurity
	return kafka.Config{
		Brokers: k.Brokers, Version: k.Version, ClientID: k.ClientID, PublishTimeout: k.PublishTimeout,
		MaxMessageBytes: k.MaxMessageBytes,
		TLS: kafka.TLS{Enabled: s.TLSEnabled, CAFile: s.TLSCAFile, CertFile: s.TLSCertFile, KeyFile: s.TLSKeyFile,
			ServerName: s.TLSServerName},
		SASL: kafka.SASL{Mechanism: s.SASLMechanism, Username: s.SASLUsername, Password: s.SASLPassword,
			PasswordFile: s.SASLPasswordFile},
	}
}

// TopicSpecs lists the topics every binary creates at start-up if missing.
func (k Kafka) TopicSpecs() []kafka.Topic {
	names := []string{k.EventsTopic, k.NotificationsTopic, k.DLQTopic, k.ParkedTopic}
	out := make([]kafka.Topic, len(names))
	for i, n := range names {
		out[i] = kafka.Topic{Name: n, Partitions: k.TopicPartitions, ReplicationFactor: k.TopicReplication}
	}
	return out
}
