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

// IntegrityAPI is what ingest-api serves of tamper evidence (SPEC 9):
// verify-chain needs the chain's HMAC keys and the checkpoints' public
// key, the export its own signing key and the HMAC keys, the public-key
// route the public key. Each is optional: a route whose keys are not given
// answers 503 integrity-not-configured, naming the setting.
type IntegrityAPI struct {
	KeysFile                string `name:"integrity-keys-file" env:"INTEGRITY_KEYS_FILE" placeholder:"PATH" help:"The writers' HMAC key file of the hash chain (the format of SOURCE_KEYS_FILE), to verify chains (verify-chain, the export's check)."`
	CheckpointPublicKeyFile string `name:"checkpoint-public-key-file" env:"CHECKPOINT_PUBLIC_KEY_FILE" placeholder:"PATH" help:"PEM public key(s) of the writers' CHECKPOINT_SIGNING_KEY_FILE (several after a change of key, the current one last): served at /api/v1/audit/checkpoints/public-key and used by verify-chain."`
	ExportSigningKeyFile    string `name:"export-signing-key-file" env:"EXPORT_SIGNING_KEY_FILE" placeholder:"PATH" help:"PEM PKCS#8 Ed25519 private key that signs exports (auditctl keys --kind ed25519 --ed25519-name export-signing-key)."`
	// See api.DefaultVerifyTimeout and api.DefaultExportMaxDuration.
	VerifyTimeout     time.Duration `name:"verify-chain-timeout" env:"VERIFY_CHAIN_TIMEOUT" default:"10m" help:"Longest one verify-chain may take (503 past it; auditctl verify has no limit)."`
	ExportMaxDuration time.Duration `name:"export-max-duration" env:"EXPORT_MAX_DURATION" default:"15m" help:"Longest one export may take, the client's reading included; past it the export ends with a signed trailer marked incomplete."`
	// See api.DefaultMaxConcurrentExports.
	MaxConcurrentExports int `name:"export-max-concurrent" env:"EXPORT_MAX_CONCURRENT" default:"2" help:"Exports one ingest-api serves at a time (each holds a database connection while it streams); more get 503 with Retry-After."`
}

// Validate reports settings that cannot work.
func (i IntegrityAPI) Validate() error {
	var errs []error
	if i.VerifyTimeout < time.Second {
		errs = append(errs, fmt.Errorf("VERIFY_CHAIN_TIMEOUT must be at least 1s, got %s", i.VerifyTimeout))
	}
	if i.ExportMaxDuration < time.Second {
		errs = append(errs, fmt.Errorf("EXPORT_MAX_DURATION must be at least 1s, got %s", i.ExportMaxDuration))
	}
	if i.MaxConcurrentExports < 1 {
		errs = append(errs, fmt.Errorf("EXPORT_MAX_CONCURRENT must be at least 1, got %d", i.MaxConcurrentExports))
	}
	return errors.Join(errs...)
}
