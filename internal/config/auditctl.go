package config

import (
	"errors"
	"strings"

	"github.com/auditstream/auditstream/internal/auth"
)

// Auditctl configures cmd/auditctl: one struct per subcommand (issue 11
// adds keys, verify and verify-export next to token).
type Auditctl struct {
	Token AuditctlToken `cmd:"" help:"Create an API key: print the token once and its AUTH_TOKENS_FILE entry."`
	Keys  AuditctlKeys  `cmd:"" help:"Generate integrity keys: an HMAC key for INTEGRITY_KEYS_FILE and an Ed25519 key pair for CHECKPOINT_SIGNING_KEY_FILE or EXPORT_SIGNING_KEY_FILE."`
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
