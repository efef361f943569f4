package config

import (
	"errors"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
)

// Auditctl configures cmd/auditctl: one struct per subcommand.
type Auditctl struct {
	Token        AuditctlToken        `cmd:"" help:"Create an API key: print the token once and its AUTH_TOKENS_FILE entry."`
	Keys         AuditctlKeys         `cmd:"" help:"Generate integrity keys: an HMAC key for INTEGRITY_KEYS_FILE and an Ed25519 key pair for CHECKPOINT_SIGNING_KEY_FILE or EXPORT_SIGNING_KEY_FILE."`
	Verify       AuditctlVerify       `cmd:"" help:"Verify the stored hash chains against the database and the signed checkpoints of the checkpoints topic."`
	VerifyExport AuditctlVerifyExport `cmd:"" name:"verify-export" help:"Verify an export file offline: its signature, its bytes and every chain in it."`
	Migrate      AuditctlMigrate      `cmd:"" help:"Apply the schema migrations as the database's owner, then exit (for binaries run with MIGRATE=false)."`
}

// AuditctlMigrate applies the embedded migrations once.
type AuditctlMigrate struct {
	URL string `name:"database-url" env:"DATABASE_URL" required:"" placeholder:"postgres://..." help:"PostgreSQL connection string of the role that owns the schema."`
	// Long enough for a database started next to it (a Job beside a
	// StatefulSet) to come up; past it the run fails and the Job retries.
	Timeout time.Duration `name:"timeout" env:"MIGRATE_TIMEOUT" default:"2m" help:"Give up after this long while PostgreSQL is unreachable."`
	JSON    bool          `name:"json" env:"AUDITCTL_JSON" help:"Print one JSON object ({\"version\": N}) instead of text."`
}

// Validate refuses an empty connection string (an empty DATABASE_URL
// satisfies "required" but would dial the local socket as the OS user).
func (m AuditctlMigrate) Validate() error {
	var errs []error
	if strings.TrimSpace(m.URL) == "" {
		errs = append(errs, errors.New("--database-url (DATABASE_URL) must not be empty"))
	}
	if m.Timeout <= 0 {
		errs = append(errs, errors.New("--timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Help implements kong.HelpProvider.
func (AuditctlMigrate) Help() string {
	return `Applies the migrations embedded in this build that the database lacks, under
golang-migrate's advisory lock (concurrent runs are safe), and prints the
schema version. Run it as the role that owns the schema, before the binaries
start with MIGRATE=false under their least-privilege roles (README, "Database
roles"); then apply deployments/postgres/grants.sql again, as new tables may
need grants.

Examples:
  auditctl migrate --database-url "postgres://auditstream_owner@db/auditstream?sslmode=verify-full"
  DATABASE_URL=... auditctl migrate --json`
}

// AuditctlToken creates an API key.
type AuditctlToken struct {
	Name       string   `name:"name" required:"" help:"Principal name of the key (recorded as submitted_by); unique in the tokens file."`
	Scopes     []string `name:"scopes" required:"" sep:"," help:"Scopes, comma-separated: audit:write, audit:read, audit:admin."`
	Namespaces []string `name:"namespaces" sep:"," help:"Limit the key to these namespaces, comma-separated (default: unrestricted)."`
	JSON       bool     `name:"json" env:"AUDITCTL_JSON" help:"Print one JSON object (token and entry) instead of text."`
}

// Validate reports a key that the API would refuse to load.
func (t AuditctlToken) Validate() error {
	var errs []error
	if strings.TrimSpace(t.Name) == "" {
		errs = append(errs, errors.New("--name must not be empty"))
	}
	if _, err := t.ParsedScopes(); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range t.Namespaces {
		if strings.TrimSpace(ns) == "" {
			errs = append(errs, errors.New("--namespaces has an empty entry"))
		}
	}
	return errors.Join(errs...)
}

// ParsedScopes returns the scopes of --scopes.
func (t AuditctlToken) ParsedScopes() ([]auth.Scope, error) {
	var out []auth.Scope
	var errs []error
	for _, s := range t.Scopes {
		sc, err := auth.ParseScope(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sc)
	}
	return out, errors.Join(errs...)
}

// Help implements kong.HelpProvider.
func (AuditctlToken) Help() string {
	return `Prints a new random API key (ast_ and 32 random bytes, base64url) once, and
the entry to add under tokens: in AUTH_TOKENS_FILE. Only the key's SHA-256 is
in the entry: the key itself is stored nowhere, so keep it in the client's
secret store now. ingest-api picks the changed file up without a restart;
remove the entry to revoke the key.

Examples:
  auditctl token --name payments-api --scopes audit:write --namespaces payments
  auditctl token --name auditor --scopes audit:read
  auditctl token --name ops --scopes audit:read,audit:admin --json | jq -r .token`
}
