package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

var bin string

// shared is the broker the verify tests publish checkpoints to; each of
// them has a database of its own, whose chains it verifies whole.
var shared struct {
	kafka *testenv.Kafka
}

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "auditctl tests", testmain.Kafka, func(ctx context.Context, s *testmain.Shared) error {
		shared.kafka = s.Kafka
		var err error
		bin, err = s.Build(ctx, "auditctl")
		return err
	}))
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run auditctl: %v", err)
	}
	return code, out.String(), errOut.String()
}

// TestTokenIsAcceptedByTheAPI: the key auditctl prints and the entry it
// prints for it are what ingest-api's authenticator accepts, as the
// principal and with the grants asked for.
func TestTokenIsAcceptedByTheAPI(t *testing.T) {
	code, out, stderr := run(t, "token", "--name", "payments-api", "--scopes", "audit:write,audit:read", "--namespaces", "payments", "--json")
	require.Equal(t, 0, code, stderr)
	var got tokenJSON
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.True(t, strings.HasPrefix(got.Token, auth.TokenPrefix))

	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, auth.TokensFile{Tokens: []auth.TokenEntry{got.Entry}}.WriteFile(path))
	a, err := auth.New(auth.Config{TokensFile: path, FileCheckInterval: time.Second}, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, "/", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+got.Token)
	p, err := a.Authenticate(req)
	require.NoError(t, err)
	require.Equal(t, auth.Principal{Name: "payments-api", Scopes: []auth.Scope{auth.ScopeWrite, auth.ScopeRead}, Namespaces: []string{"payments"}}, p)

	// The text form shows the same kind of key once, and an entry that
	// loads as a tokens file as it is.
	code, out, stderr = run(t, "token", "--name", "auditor", "--scopes", "audit:read")
	require.Equal(t, 0, code, stderr)
	entry := out[strings.Index(out, "\ntokens:")+1:]
	require.NoError(t, os.WriteFile(path, []byte(entry), 0o600))
	_, err = auth.New(auth.Config{TokensFile: path, FileCheckInterval: time.Second}, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err, entry)
	require.Equal(t, 1, strings.Count(out, auth.TokenPrefix), "the key is printed once")
}

// TestExitCodes: 2 on usage errors, with the reason; --help has examples.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, ""},
		{"no name", []string{"token", "--scopes", "audit:read"}, "--name"},
		{"no scopes", []string{"token", "--name", "x"}, "--scopes"},
		{"unknown scope", []string{"token", "--name", "x", "--scopes", "audit:everything"}, `unknown scope "audit:everything"`},
		{"empty namespace", []string{"token", "--name", "x", "--scopes", "audit:read", "--namespaces", "a,,b"}, "empty entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			require.Equal(t, 2, code, stderr)
			require.Contains(t, stderr, tc.want)
		})
	}
	for _, cmd := range []string{"token", "verify", "verify-export"} {
		code, out, _ := run(t, cmd, "--help")
		require.Equal(t, 0, code, cmd)
		require.Contains(t, out, "Examples:", cmd)
		require.Contains(t, out, "AUDITCTL_JSON", cmd)
	}
}

// TestMigrateFailsOnAnUnreachableDatabase: migrate gives up after its
// timeout with exit 1 and the reason, so a Job retries it; a missing URL
// is a usage error.
func TestMigrateFailsOnAnUnreachableDatabase(t *testing.T) {
	start := time.Now()
	code, _, stderr := run(t, "migrate", "--database-url", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1",
		"--timeout", "2s")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "auditctl:")
	require.Less(t, time.Since(start), 20*time.Second)

	t.Setenv("DATABASE_URL", "") // not a developer's, which the tests may use otherwise
	code, _, stderr = run(t, "migrate")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "--database-url")
}
