// Command auditctl is auditstream's operator tool (SPEC 12). Its token
// command creates API keys for AUTH_TOKENS_FILE, keys the integrity keys
// (keys.go). Exit codes: 0 ok, 1 failure, 2 usage.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/config"
)

func main() {
	var cfg config.Auditctl
	kctx := config.Parse(&cfg, "auditctl", "auditstream operator tool: API keys for ingest-api, integrity keys for the writer.", os.Args[1:])
	if err := dispatch(kctx, cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "auditctl: %v\n", err)
		os.Exit(1)
	}
}

func dispatch(kctx *kong.Context, cfg config.Auditctl, out io.Writer) error {
	switch kctx.Command() {
	case "token":
		return runToken(cfg.Token, out)
	case "keys":
		return runKeys(cfg.Keys, out)
	default:
		return fmt.Errorf("unknown command %q", kctx.Command())
	}
}

// tokenJSON is the --json form of a new key.
type tokenJSON struct {
	Token string          `json:"token"`
	Entry auth.TokenEntry `json:"entry"`
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
