package config

import (
	"errors"
	"fmt"
)

// AuditctlVerify checks stored chains against the database and the
// checkpoints topic (SPEC 9.3).
type AuditctlVerify struct {
	Kafka       Kafka  `embed:""`
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" placeholder:"postgres://..." help:"PostgreSQL connection string; a role that may SELECT audit_events, chain_heads, integrity_checkpoints (and the retention records) is enough."`

	CheckpointsTopic     string   `name:"checkpoints-topic" env:"CHECKPOINTS_TOPIC" default:"audit.checkpoints" help:"Topic of the signed checkpoints."`
	IntegrityKeysFile    string   `name:"integrity-keys-file" env:"INTEGRITY_KEYS_FILE" placeholder:"PATH" help:"The writers' HMAC key file of the hash chain (every key still needed to verify)."`
	CheckpointPublicKeys []string `name:"checkpoint-public-key" env:"CHECKPOINT_PUBLIC_KEY_FILE" sep:"," placeholder:"PATH" help:"PEM public key file(s) of the checkpoint signing key(s), comma-separated (the one /api/v1/audit/checkpoints/public-key serves)."`

	Since string `name:"since" placeholder:"TIME" help:"Only chains changed at or after this time (their heads in a checkpoint of the range, or moved since the last one): 24h, 7d, RFC 3339, 2006-01-02. Default: every chain."`
	Until string `name:"until" placeholder:"TIME" help:"Only chains changed at or before this time (same forms)."`

	Parallel int  `name:"parallel" env:"AUDITCTL_PARALLEL" default:"4" help:"Chains verified at once, each from its own database snapshot."`
	JSON     bool `name:"json" env:"AUDITCTL_JSON" help:"Print one JSON object (the summary and every broken chain) instead of text."`
}

// Validate reports what the command cannot run without.
func (v AuditctlVerify) Validate() error {
	errs := []error{v.Kafka.Validate()}
	if v.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL (--database-url) is required"))
	}
	if v.IntegrityKeysFile == "" {
		errs = append(errs, errors.New("INTEGRITY_KEYS_FILE (--integrity-keys-file) is required: the chains are verified with the HMAC keys"))
	}
	if len(v.CheckpointPublicKeys) == 0 {
		errs = append(errs, errors.New("CHECKPOINT_PUBLIC_KEY_FILE (--checkpoint-public-key) is required: the checkpoints are verified with it"))
	}
	if v.CheckpointsTopic == "" {
		errs = append(errs, errors.New("--checkpoints-topic must not be empty"))
	}
	if v.Parallel < 1 || v.Parallel > 64 {
		errs = append(errs, fmt.Errorf("--parallel must be from 1 to 64, got %d", v.Parallel))
	}
	return errors.Join(errs...)
}

// Help implements kong.HelpProvider.
func (AuditctlVerify) Help() string {
	return `Reads every signed checkpoint of the checkpoints topic, which someone who
can rewrite the database cannot change: each signature, the sequence of ids
and each checkpoint's link to the one before, and whether
integrity_checkpoints holds the same records. Then verifies every chain
changed in --since/--until (all of them without), each in one database
snapshot: every event's HMAC, the links and chain_seq continuity, the head
the writer recorded, what retention removed, and the latest head the topic's
checkpoints recorded for it. Prints a summary and each broken chain with the
first event where it breaks; progress goes to stderr. Exit status: 0 when
everything verifies, 1 when anything does not (or cannot be checked), 2 for
a usage error.

Examples:
  auditctl verify --kafka-brokers kafka:9092 --database-url "$DATABASE_URL" \
    --integrity-keys-file integrity-keys.yaml --checkpoint-public-key checkpoint-signing-key.pub.pem
  auditctl verify --since 24h --json | jq '.broken_chains[].correlation_id'
  KAFKA_BROKERS=kafka:9092 DATABASE_URL=postgres://... INTEGRITY_KEYS_FILE=keys.yaml \
    CHECKPOINT_PUBLIC_KEY_FILE=old.pub.pem,current.pub.pem auditctl verify --since 2025-12-01 --until 2025-12-31`
}

// AuditctlVerifyExport checks an export file offline (SPEC 9.4).
type AuditctlVerifyExport struct {
	File              string   `arg:"" name:"file" help:"The export file (ndjson or json, as GET /api/v1/audit/export wrote it); - reads stdin."`
	PublicKeys        []string `name:"public-key" env:"EXPORT_PUBLIC_KEY_FILE" sep:"," placeholder:"PEM_FILE" help:"PEM public key file(s) of the export signing key, comma-separated."`
	IntegrityKeysFile string   `name:"integrity-keys" env:"INTEGRITY_KEYS_FILE" placeholder:"PATH" help:"Also recompute each event's HMAC with these keys (the writers' key file); without it only the signature, the file and the chain links are checked."`
	JSON              bool     `name:"json" env:"AUDITCTL_JSON" help:"Print the report as one JSON object instead of text."`
}

// Validate reports what the command cannot run without.
func (v AuditctlVerifyExport) Validate() error {
	if len(v.PublicKeys) == 0 {
		return errors.New("--public-key (EXPORT_PUBLIC_KEY_FILE) is required: the export's signature is verified with it")
	}
	return nil
}

// Help implements kong.HelpProvider.
func (AuditctlVerifyExport) Help() string {
	return `Verifies an export with no access to the service, on two levels:

  without secrets (--public-key only): the Ed25519 signature of the export's
  metadata, that the SHA-256 of every byte before it is the one signed (no
  byte changed, none cut), that the service finished it (complete), its
  counts, and each chain's links: every previous_event_hash is the event_hash
  of the event before, chain_seq 1's is empty, chain_seq never repeats or
  goes back. The service's own check of the chains when it exported them,
  made with the keys and signed (hash_chain_verification), is held to as
  well: an event it found broken fails the verification. What this level
  cannot see by itself is an event changed with its hash left alone.

  with --integrity-keys: each event's HMAC is recomputed too, so a changed
  field is named where it is. The HMAC keys are secrets: whoever holds them
  can forge chains, which is why the first level exists.

chain_seq values the export does not hold (left out by its filters) are
counted, not judged: whether events are missing from a chain is what
verify-chain and auditctl verify answer. Exit status: 0 when the export
verifies, 1 when it does not, 2 for a usage error.

Examples:
  auditctl verify-export export.ndjson --public-key export-signing-key.pub.pem
  auditctl verify-export export.json --public-key export.pub.pem --integrity-keys integrity-keys.yaml
  curl -s -H "Authorization: Bearer $TOKEN" 'https://audit.example.com/api/v1/audit/export?correlation_id=rr-1' |
    auditctl verify-export - --public-key export.pub.pem --json`
}
