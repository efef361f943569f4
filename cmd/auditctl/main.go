// Command auditctl is auditstream's operator tool (SPEC 12). Its token
// command creates API keys for AUTH_TOKENS_FILE, keys the integrity keys
// (keys.go), migrate applies the schema migrations as the schema's owner,
// so that the binaries can run under roles that may not change it
// (migrate.go), verify checks the stored chains against the checkpoints
// topic (verify.go), verify-export an export file offline
// (verify_export.go). Exit codes: 0 ok, 1 failure (also: not verified), 2
// usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/store"
)

func main() {
	var cfg config.Auditctl
	kctx := config.Parse(&cfg, "auditctl", "auditstream operator tool: API keys for ingest-api, integrity keys for the writer, schema migrations, verification of chains and exports.", os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, kctx, cfg, os.Stdout)
	stop()
	var usage usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintf(os.Stderr, "auditctl: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "auditctl: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a command line that parsed but cannot be run (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

func dispatch(ctx context.Context, kctx *kong.Context, cfg config.Auditctl, out io.Writer) error {
	switch kctx.Command() {
	case "token":
		return runToken(cfg.Token, out)
	case "keys":
		return runKeys(cfg.Keys, out)
	case "verify":
		return runVerify(ctx, cfg.Verify, out, os.Stderr)
	case "verify-export <file>":
		return runVerifyExport(cfg.VerifyExport, os.Stdin, out, os.Stderr)
	case "migrate":
		return runMigrate(cfg.Migrate, out)
	default:
		return fmt.Errorf("unknown command %q", kctx.Command())
	}
}

// tokenJSON is the --json form of a new key.
type tokenJSON struct {
	Token string          `json:"token"`
	Entry auth.TokenEntry `json:"entry"`
}

func runMigrate(c config.AuditctlMigrate, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	log, err := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	if err != nil {
		return err
	}
	if err := store.MigrateRetrying(ctx, c.URL, log); err != nil {
		return err
	}
	version, err := store.Migrate(ctx, c.URL, nil)
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(out).Encode(map[string]uint{"version": version})
	}
	_, err = fmt.Fprintf(out, "schema at migration %d\n", version)
	return err
}

func runToken(c config.AuditctlToken, out io.Writer) error {
	scopes, err := c.ParsedScopes()
	if err != nil {
		return err
	}
	token, entry, err := auth.NewToken(c.Name, scopes, c.Namespaces)
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(out).Encode(tokenJSON{Token: token, Entry: entry})
	}
	file, err := auth.TokensFile{Tokens: []auth.TokenEntry{entry}}.YAML()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, `Token (shown once: store it in the client's secret store now):

  %s

Entry for AUTH_TOKENS_FILE (add it under tokens:; ingest-api reloads the file by itself):

%s`, token, file)
	return err
}
