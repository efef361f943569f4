package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/internal/kafka"
)

// Integrity is the writer's tamper evidence (SPEC 9): the HMAC keys of the
// hash chain and the key that signs checkpoints. Required, like the source
// keys: a writer that stores events without a chain must be told so.
type Integrity struct {
	KeysFile string `name:"integrity-keys-file" env:"INTEGRITY_KEYS_FILE" placeholder:"PATH" help:"YAML key file (keys: [{id, secret | secret_file}]) of the hash chain: the last key links new events, every key verifies; rotation is adding a key."`
	Disabled bool   `name:"integrity-disabled" env:"INTEGRITY_DISABLED" help:"Store events without a hash chain (their chain fields null) and publish no checkpoints."`

	CheckpointSigningKeyFile string `name:"checkpoint-signing-key-file" env:"CHECKPOINT_SIGNING_KEY_FILE" placeholder:"PATH" help:"PEM PKCS#8 Ed25519 private key that signs the checkpoints (openssl genpkey -algorithm ed25519, or auditctl keys)."`
	// A minute bounds what someone holding the HMAC key could rewrite
	// unseen to the last minute, at one small record a minute per writer
	// while events flow.
	CheckpointInterval time.Duration `name:"checkpoint-interval" env:"CHECKPOINT_INTERVAL" default:"1m" help:"Time between signed checkpoints of the chain heads that moved (none while nothing moves)."`
	CheckpointsTopic   string        `name:"checkpoints-topic" env:"CHECKPOINTS_TOPIC" default:"audit.checkpoints" help:"Topic of the signed checkpoints, created with infinite retention and one partition."`
}

// Validate insists on a decision: keys, or integrity disabled.
func (i Integrity) Validate() error {
	switch {
	case i.Disabled && (i.KeysFile != "" || i.CheckpointSigningKeyFile != ""):
		return errors.New("INTEGRITY_DISABLED=true contradicts INTEGRITY_KEYS_FILE / CHECKPOINT_SIGNING_KEY_FILE: choose one")
	case i.Disabled:
		return nil
	}
	var errs []error
	if i.KeysFile == "" {
		errs = append(errs, errors.New("INTEGRITY_KEYS_FILE is required (the HMAC keys of the hash chain; auditctl keys generates one), or set INTEGRITY_DISABLED=true to store events without a chain"))
	}
	if i.CheckpointSigningKeyFile == "" {
		errs = append(errs, errors.New("CHECKPOINT_SIGNING_KEY_FILE is required (the Ed25519 key that signs checkpoints; auditctl keys generates one), or set INTEGRITY_DISABLED=true"))
	}
	if i.CheckpointInterval < time.Second {
		errs = append(errs, fmt.Errorf("CHECKPOINT_INTERVAL must be at least 1s, got %s", i.CheckpointInterval))
	}
	if i.CheckpointsTopic == "" {
		errs = append(errs, errors.New("CHECKPOINTS_TOPIC must not be empty"))
	}
	return errors.Join(errs...)
}

// CheckpointsTopicSpec is the checkpoints topic as the writer creates it:
// one partition, so the topic holds the checkpoints in the order they were
// published, and infinite retention, since they anchor all of history.
func (i Integrity) CheckpointsTopicSpec(replication int16) kafka.Topic {
	return kafka.Topic{Name: i.CheckpointsTopic, Partitions: 1, ReplicationFactor: replication,
		Config: map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}}
}
