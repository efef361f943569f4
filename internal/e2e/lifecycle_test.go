package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/client"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// stack is a broker, a database, a shared source key and an API key with
// every scope: what the lifecycle tests run the binaries against.
type stack struct {
	kafka  *testenv.Kafka
	pg     *testenv.Postgres
	keys   string
	token  string
	tokens string
	// integrity are the writers' chain keys, shared by every writer of the
	// stack, as the writers of one deployment share them.
	integrity testenv.IntegrityKeys
}

func newStack(t *testing.T) *stack {
	t.Helper()
	token, entry, err := auth.NewToken("legal-admin", auth.AllScopes, nil)
	require.NoError(t, err)
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, auth.TokensFile{Tokens: []auth.TokenEntry{entry}}.WriteFile(tokens))
	return &stack{kafka: testenv.NewKafka(t, nil), pg: testenv.NewPostgres(t), keys: testenv.NewSourceKeys(t),
		token: token, tokens: tokens, integrity: testenv.NewIntegrityKeys(t)}
}

// writer starts a writer against databaseURL (the stack's own when
// empty), with env added.
func (s *stack) writer(t *testing.T, databaseURL string, env ...string) *service {
	t.Helper()
	if databaseURL == "" {
		databaseURL = s.pg.URL()
	}
	base := append(append(s.kafka.Env(), s.integrity.Env()...), "DATABASE_URL="+databaseURL, "SOURCE_KEYS_FILE="+s.keys)
	return start(t, "writer", append(base, env...)...)
}

func (s *stack) api(t *testing.T, databaseURL string, env ...string) *service {
	t.Helper()
	if databaseURL == "" {
		databaseURL = s.pg.URL()
	}
	return start(t, "ingest-api", append(append(s.kafka.Env(), "DATABASE_URL="+databaseURL, "SOURCE_KEYS_FILE="+s.keys,
		"AUTH_TOKENS_FILE="+s.tokens), env...)...)
}

// call sends a request with the stack's token and decodes a JSON answer.
func (s *stack) call(t *testing.T, api *service, method, path, body string) (int, map[string]any) {
	t.Helper()
	code, resp, err := httpDoAs(s.token, method, "http://"+api.addr+path, body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(resp), &m), "%d %s", code, resp)
	return code, m
}

// oldEvents is a batch of events of correlation ids corrs, n each, three
// years old: a backfill.
func oldEvents(corrs []string, n int) (string, time.Time) {
	at := time.Now().UTC().AddDate(-3, 0, 0)
	at = time.Date(at.Year(), at.Month(), 10, 12, 0, 0, 0, time.UTC)
	var events []string
	for _, c := range corrs {
		for i := range n {
			events = append(events, fmt.Sprintf(`{"version":"1.0","event_type":"e2e.backfill","event_timestamp":%q,
				"event_category":"gateway","event_action":"import","event_outcome":"success","correlation_id":%q,"event_data":{"i":%d}}`,
				at.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), c, i))
		}
	}
	return "[" + strings.Join(events, ",") + "]", at
}

// systemEvents returns the stored events of the system's of type typ.
func (s *stack) systemEvents(t *testing.T, api *service, typ string) []map[string]any {
	t.Helper()
	code, body := s.call(t, api, http.MethodGet, "/api/v1/audit/events?"+url.Values{
		"event_category": {audit.SystemCategory}, "event_type": {typ}, "limit": {"100"}}.Encode(), "")
	require.Equal(t, http.StatusOK, code, "%v", body)
	var out []map[string]any
	for _, e := range body["data"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func partitionExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'audit_events'::regclass AND inhrelid = to_regclass($1))`,
		name).Scan(&ok))
	return ok
}

func registeredIDs(t *testing.T, conn *pgx.Conn, from, to time.Time) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM audit_event_ids WHERE event_timestamp >= $1 AND event_timestamp < $2`,
		from, to).Scan(&n))
	return n
}

// TestRetentionAndLegalHold: backfilled events three years old outlive
// RETENTION_DAYS=365 while a hold covers one of their correlation ids:
// the writer's maintenance keeps their partition and records that it did;
// once the hold is released the next run drops the partition with its
// ids, records the drop as the system's own event, and queries still
// answer.
func TestRetentionAndLegalHold(t *testing.T) {
	s := newStack(t)
	first := s.writer(t, "")
	api := s.api(t, "")
	first.awaitReady(t)
	api.awaitReady(t)

	held, free := "e2e-held-"+uuid.NewString(), "e2e-free-"+uuid.NewString()
	batch, at := oldEvents([]string{held, free}, 3)
	code, body := s.call(t, api, http.MethodPost, "/api/v1/audit/events/batch", batch)
	require.Equal(t, http.StatusCreated, code, "%v", body)
	testenv.Await(t, 30*time.Second, "the backfill stored", func() (bool, string) {
		code, body := s.call(t, api, http.MethodGet, "/api/v1/audit/events?correlation_id="+held, "")
		return code == http.StatusOK && len(body["data"].([]any)) == 3, fmt.Sprint(code, body)
	})
	code, body = s.call(t, api, http.MethodPost, "/api/v1/audit/legal-hold",
		fmt.Sprintf(`{"correlation_id":%q,"reason":"e2e matter"}`, held))
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.EqualValues(t, 3, body["events_affected"])
	require.Equal(t, "legal-admin", body["placed_by"])

	// The default retention keeps them; seven years is long. A writer
	// with a year's retention takes over.
	require.NoError(t, first.Signal(syscall.SIGTERM))
	require.Equal(t, 0, first.WaitExit(t, 30*time.Second))
	second := s.writer(t, "", "RETENTION_DAYS=365", "MAINTENANCE_INTERVAL=1s")
	second.awaitReady(t)

	conn, err := pgx.Connect(t.Context(), s.pg.URL())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	partition := store.PartitionName(at)
	monthFrom := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	monthTo := monthFrom.AddDate(0, 1, 0)
	testenv.Await(t, 60*time.Second, "the held partition reported", func() (bool, string) {
		held := s.systemEvents(t, api, selfaudit.TypePartitionHeld)
		return len(held) > 0, fmt.Sprint(len(held))
	})
	require.True(t, partitionExists(t, conn, partition))
	require.Equal(t, 6, registeredIDs(t, conn, monthFrom, monthTo))
	heldEvent := s.systemEvents(t, api, selfaudit.TypePartitionHeld)[0]
	require.Equal(t, audit.SystemPrincipal, heldEvent["submitted_by"], "signed by the writer as the system")
	require.Equal(t, partition, heldEvent["resource_id"])
	require.Contains(t, heldEvent["event_data"].(map[string]any)["held_correlation_ids"], held)

	code, body = s.call(t, api, http.MethodDelete, "/api/v1/audit/legal-hold/"+url.PathEscape(held), `{"release_reason":"closed"}`)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, "legal-admin", body["released_by"])
	testenv.Await(t, 60*time.Second, "the partition dropped", func() (bool, string) {
		return !partitionExists(t, conn, partition), partition
	})
	require.Zero(t, registeredIDs(t, conn, monthFrom, monthTo), "the ids went with it")

	// Queries answer, without the dropped events.
	for _, corr := range []string{held, free} {
		code, body := s.call(t, api, http.MethodGet, "/api/v1/audit/events?correlation_id="+corr, "")
		require.Equal(t, http.StatusOK, code, "%v", body)
		require.Empty(t, body["data"])
	}
	testenv.Await(t, 30*time.Second, "the drop recorded", func() (bool, string) {
		drops := s.systemEvents(t, api, selfaudit.TypePartitionDropped)
		return len(drops) == 1, fmt.Sprint(drops)
	})
	drop := s.systemEvents(t, api, selfaudit.TypePartitionDropped)[0]
	require.Equal(t, audit.SystemPrincipal, drop["submitted_by"])
	require.Equal(t, selfaudit.RetentionChain, drop["correlation_id"])
	require.EqualValues(t, 6, drop["event_data"].(map[string]any)["events"])
	// The placement and the release are the system's events too, naming
	// who acted.
	for _, typ := range []string{selfaudit.TypeHoldPlaced, selfaudit.TypeHoldReleased} {
		evs := s.systemEvents(t, api, typ)
		require.Len(t, evs, 1, typ)
		require.Equal(t, "legal-admin", evs[0]["actor_id"])
		require.Equal(t, audit.SystemPrincipal, evs[0]["submitted_by"])
	}
	require.Contains(t, metrics(t, second), "auditstream_retention_partitions_dropped_total 1")
	require.Regexp(t, `auditstream_retention_partitions_held_total [1-9]`, metrics(t, second))
}

// metrics returns a binary's /metrics text.
func metrics(t *testing.T, s *service) string {
	t.Helper()
	code, body, err := httpDo(http.MethodGet, "http://"+s.addr+"/metrics", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	return body
}

// TestLeastPrivilegeRoles runs the binaries as README's database roles:
// the owner migrates (auditctl migrate) and grants
// (deployments/postgres/grants.sql); the writer and the API start with
// MIGRATE=false under their roles. A client's event with the newer fields
// reads back as sent, holds work, retention drops through the owner's
// function, and neither role can rewrite history.
func TestLeastPrivilegeRoles(t *testing.T) {
	s := newStack(t)
	ctx := t.Context()
	require.NoError(t, s.pg.Exec(ctx, `CREATE ROLE auditstream_owner LOGIN;
		CREATE ROLE auditstream_writer LOGIN;
		CREATE ROLE auditstream_api LOGIN;
		GRANT CREATE ON SCHEMA public TO auditstream_owner`))
	urlAs := func(role string) string {
		u, err := s.pg.URLAs(role, "")
		require.NoError(t, err)
		return u
	}
	code, stdout, stderr := run(t, "auditctl", []string{"migrate", "--json"}, "DATABASE_URL="+urlAs("auditstream_owner"))
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, fmt.Sprintf(`{"version": %d}`, latestMigration(t)), stdout)
	grants, err := os.ReadFile("../../deployments/postgres/grants.sql")
	require.NoError(t, err)
	owner, err := pgx.Connect(ctx, urlAs("auditstream_owner"))
	require.NoError(t, err)
	defer owner.Close(context.Background())
	_, err = owner.Exec(ctx, string(grants))
	require.NoError(t, err)

	writer := s.writer(t, urlAs("auditstream_writer"), "MIGRATE=false", "RETENTION_DAYS=365", "MAINTENANCE_INTERVAL=1s")
	api := s.api(t, urlAs("auditstream_api"), "MIGRATE=false")
	writer.awaitReady(t)
	api.awaitReady(t)

	// A client's event with the newer fields reads back as sent.
	c, err := client.New("http://"+api.addr, client.WithToken(s.token))
	require.NoError(t, err)
	corr := "e2e-roles-" + uuid.NewString()
	ev := client.Event{EventID: uuid.New(), Version: "1.0", EventType: "e2e.roles", EventCategory: client.CategoryGateway,
		EventAction: "check", EventOutcome: client.OutcomeFailure, CorrelationID: corr, EventData: map[string]any{"k": "v"},
		ActorIP: new("::ffff:198.51.100.7"), ClusterID: new("c-uid-1"), ErrorCode: new("E_TIMEOUT"),
		ErrorMessage: new("upstream timed out"), IsSensitive: true, RetentionDays: new(90)}
	require.NoError(t, c.Send(ctx, ev))
	require.NoError(t, c.Close(ctx))
	var stored map[string]any
	testenv.Await(t, 30*time.Second, "the client's event served", func() (bool, string) {
		var code int
		code, stored = s.call(t, api, http.MethodGet, "/api/v1/audit/events/"+ev.EventID.String(), "")
		return code == http.StatusOK, fmt.Sprint(code, stored)
	})
	require.Equal(t, "198.51.100.7", stored["actor_ip"], "IPv4-mapped IPv6 reads back as IPv4")
	require.Equal(t, "c-uid-1", stored["cluster_id"])
	require.Equal(t, "E_TIMEOUT", stored["error_code"])
	require.Equal(t, "upstream timed out", stored["error_message"])
	require.Equal(t, true, stored["is_sensitive"])
	require.EqualValues(t, 90, stored["retention_days"])
	require.Equal(t, "legal-admin", stored["submitted_by"])

	// A notification goes through the API's reservation and is stored by
	// the writer's role.
	notificationID := "e2e-roles-" + uuid.NewString()
	code, body := s.call(t, api, http.MethodPost, "/api/v1/audit/notifications", fmt.Sprintf(`{"remediation_id":"r-1",
		"notification_id":%q,"recipient":"sre@example.com","channel":"teams","message_summary":"roles","status":"sent","sent_at":%q}`,
		notificationID, time.Now().UTC().Format(time.RFC3339)))
	require.Equal(t, http.StatusCreated, code, "%v", body)
	testenv.Await(t, 30*time.Second, "the notification stored", func() (bool, string) {
		var n int
		err := owner.QueryRow(ctx, `SELECT count(*) FROM notification_audit WHERE notification_id = $1 AND channel = 'teams'`,
			notificationID).Scan(&n)
		return err == nil && n == 1, fmt.Sprint(n, err)
	})

	// The API's role places and releases holds.
	code, body = s.call(t, api, http.MethodPost, "/api/v1/audit/legal-hold", fmt.Sprintf(`{"correlation_id":%q,"reason":"r"}`, corr))
	require.Equal(t, http.StatusOK, code, "%v", body)
	code, body = s.call(t, api, http.MethodDelete, "/api/v1/audit/legal-hold/"+corr, `{"release_reason":"r"}`)
	require.Equal(t, http.StatusOK, code, "%v", body)

	// Retention, through the owner's function: a backfill past the year
	// goes at the next maintenance run.
	batch, at := oldEvents([]string{corr + "-old"}, 4)
	code, body = s.call(t, api, http.MethodPost, "/api/v1/audit/events/batch", batch)
	require.Equal(t, http.StatusCreated, code, "%v", body)
	testenv.Await(t, 60*time.Second, "the backfill dropped", func() (bool, string) {
		var events int
		err := owner.QueryRow(ctx, `SELECT coalesce(sum(events), 0) FROM retention_drops WHERE partition = $1`,
			store.PartitionName(at)).Scan(&events)
		return err == nil && events == 4 && !partitionExists(t, owner, store.PartitionName(at)), fmt.Sprint(events, err)
	})

	// The API's role reads what retention removed from a chain.
	api1, err := pgx.Connect(ctx, urlAs("auditstream_api"))
	require.NoError(t, err)
	var chains int
	require.NoError(t, api1.QueryRow(ctx, `SELECT count(*) FROM retention_dropped_chains WHERE correlation_id = $1`, corr+"-old").Scan(&chains))
	_ = api1.Close(context.Background())
	require.Positive(t, chains)

	// Neither role may rewrite or remove history.
	for _, tc := range []struct{ role, sql string }{
		{"auditstream_writer", `UPDATE audit_events SET severity = 'x' WHERE correlation_id = '` + corr + `'`},
		{"auditstream_writer", `DELETE FROM audit_events WHERE correlation_id = '` + corr + `'`},
		{"auditstream_writer", `DELETE FROM audit_event_ids`},
		{"auditstream_writer", `UPDATE legal_holds SET reason = 'x'`},
		{"auditstream_writer", `DROP TABLE ` + store.PartitionName(time.Now())},
		{"auditstream_writer", `CREATE TABLE audit_events_p199001 PARTITION OF audit_events FOR VALUES FROM ('1990-01-01') TO ('1990-02-01')`},
		{"auditstream_api", `INSERT INTO audit_event_ids VALUES (gen_random_uuid(), now())`},
		{"auditstream_api", `UPDATE legal_holds SET reason = 'x'`},
		{"auditstream_api", `SELECT * FROM audit_events_retention_drop(now(), 1, gen_random_uuid())`},
		{"auditstream_api", `SELECT audit_events_ensure_partition('1990-01-01')`},
	} {
		conn, err := pgx.Connect(ctx, urlAs(tc.role))
		require.NoError(t, err)
		_, err = conn.Exec(ctx, tc.sql)
		_ = conn.Close(context.Background())
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "%s: %s", tc.role, tc.sql)
		require.Contains(t, []string{"42501", "42P01"}, pgErr.Code, "%s: %s: %v", tc.role, tc.sql, err)
	}
}

// latestMigration is the number of the newest migration in the tree, the
// version a migrated database reports.
func latestMigration(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("../../internal/store/migrations/*.up.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	n, err := strconv.Atoi(strings.SplitN(filepath.Base(files[len(files)-1]), "_", 2)[0])
	require.NoError(t, err)
	return n
}
