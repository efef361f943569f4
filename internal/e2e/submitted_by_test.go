package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestSubmittedByThroughTheAPI: an event and a notification posted to the
// API with an API key are stored with the key's name as submitted_by, whatever the body
// claims, when the writer shares the API's source key; a writer with
// another key stores the same records as unverified claims.
func TestSubmittedByThroughTheAPI(t *testing.T) {
	tests := []struct {
		name       string
		writerKeys func(apiKeys string) string
		want       string
	}{
		{"shared key", func(apiKeys string) string { return apiKeys }, "svc-gateway"},
		{"another key", func(string) string { return testenv.NewSourceKeys(t) }, "kafka:svc-gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testenv.NewKafka(t, nil)
			pg := testenv.NewPostgres(t)
			apiKeys := testenv.NewSourceKeys(t)
			// The caller is the API key's principal.
			token, entry, err := auth.NewToken("svc-gateway", []auth.Scope{auth.ScopeWrite, auth.ScopeRead}, nil)
			require.NoError(t, err)
			tokensFile := filepath.Join(t.TempDir(), "tokens.yaml")
			require.NoError(t, auth.TokensFile{Tokens: []auth.TokenEntry{entry}}.WriteFile(tokensFile))
			env := append(k.Env(), "DATABASE_URL="+pg.URL())
			writer := start(t, "writer", append(env, "SOURCE_KEYS_FILE="+tt.writerKeys(apiKeys))...)
			api := start(t, "ingest-api", append(env, "SOURCE_KEYS_FILE="+apiKeys, "AUTH_TOKENS_FILE="+tokensFile)...)
			writer.awaitReady(t)
			api.awaitReady(t)

			id := uuid.NewString()
			body := strings.Replace(eventJSON(id, "e2e-submitted-by"), `"event_id"`, `"submitted_by":"mallory","event_id"`, 1)
			code, resp, err := httpDoAs(token, http.MethodPost, "http://"+api.addr+"/api/v1/audit/events", body)
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, code, resp)
			notificationID := "e2e-" + uuid.NewString()
			code, resp, err = httpDoAs(token, http.MethodPost, "http://"+api.addr+"/api/v1/audit/notifications", fmt.Sprintf(
				`{"remediation_id":"r-1","notification_id":%q,"recipient":"sre@example.com","channel":"email",
				"message_summary":"e2e","status":"sent","sent_at":%q,"submitted_by":"mallory"}`,
				notificationID, time.Now().UTC().Format(time.RFC3339)))
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, code, resp)
			require.NotContains(t, resp, "submitted_by", "the 201 is the record as published")

			var stored map[string]any
			testenv.Await(t, 30*time.Second, "the event served", func() (bool, string) {
				code, body, err := httpDoAs(token, http.MethodGet, "http://"+api.addr+"/api/v1/audit/events/"+id, "")
				if err != nil || code != http.StatusOK {
					return false, fmt.Sprint(code, body, err)
				}
				return json.Unmarshal([]byte(body), &stored) == nil, body
			})
			require.Equal(t, tt.want, stored["submitted_by"])

			conn, err := pgx.Connect(t.Context(), pg.URL())
			require.NoError(t, err)
			defer conn.Close(context.Background())
			var submittedBy string
			testenv.Await(t, 30*time.Second, "the notification stored", func() (bool, string) {
				err := conn.QueryRow(t.Context(), `SELECT submitted_by FROM notification_audit WHERE notification_id = $1`,
					notificationID).Scan(&submittedBy)
				return err == nil, fmt.Sprint(err)
			})
			require.Equal(t, tt.want, submittedBy)
		})
	}
}

// TestSourceKeysRequired: ingest-api and the writer refuse to start
// without a source key file unless signing is disabled explicitly, and
// refuse a key file they cannot use, naming it but not its secret.
func TestSourceKeysRequired(t *testing.T) {
	k := testenv.NewKafka(t, nil)
	pg := testenv.NewPostgres(t)
	short := t.TempDir() + "/short.yaml"
	require.NoError(t, writeFile(short, "keys:\n  - id: k1\n    secret: c2hvcnQtc2VjcmV0\n"))
	for _, name := range []string{"ingest-api", "writer"} {
		env := append(k.Env(), "DATABASE_URL="+pg.URL(), "HTTP_ADDR="+testenv.NewAddr(t), "METRICS_ADDR="+testenv.NewAddr(t),
			"AUTH_DISABLED=true")
		if name == "writer" {
			env = append(env, testenv.NewIntegrityKeys(t).Env()...) // the writer's other keys, not tested here
		}
		code, stdout, stderr := run(t, name, nil, env...)
		require.Equal(t, 2, code, "%s without SOURCE_KEYS_FILE: a usage error\n%s%s", name, stdout, stderr)
		require.Contains(t, stderr, "SOURCE_KEYS_FILE is required")

		code, _, stderr = run(t, name, nil, append(env, "SOURCE_KEYS_FILE="+short)...)
		require.Equal(t, 1, code, name)
		require.Contains(t, stderr, "short.yaml")
		require.Contains(t, stderr, "at least 32 random bytes")
		require.NotContains(t, stderr, "c2hvcnQtc2VjcmV0")

		// Disabled on purpose: it starts, and says what that means.
		p := start(t, name, append(env, "SOURCE_SIGNING_DISABLED=true")...)
		p.awaitReady(t)
		require.Contains(t, p.Stderr.String()+p.Stdout.String(), "source signing disabled")
	}
}
