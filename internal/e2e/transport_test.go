package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/testenv"
)

// secureStack is a broker that requires TLS, a client certificate and
// SCRAM-SHA-512, and a PostgreSQL that takes TLS only, with the settings
// that connect the binaries to both (verify-full for PostgreSQL).
type secureStack struct {
	kafka *testenv.Kafka
	pg    *testenv.Postgres
	env   []string
}

func newSecureStack(t *testing.T) secureStack {
	k := testenv.NewSecureKafka(t, nil, "SCRAM-SHA-512", true)
	pg := testenv.NewTLSPostgres(t)
	env := append(k.Env(), "DATABASE_URL="+pg.URL(),
		// The tests of the API's own authentication live with it.
		"AUTH_DISABLED=true",
		"SOURCE_KEYS_FILE="+testenv.NewSourceKeys(t))
	// The writer's integrity keys (the API does not read them).
	env = append(env, testenv.NewIntegrityKeys(t).Env()...)
	return secureStack{kafka: k, pg: pg, env: env}
}

// TestSecureTransport runs the pipeline over TLS and SASL to Kafka and
// TLS to PostgreSQL: an event posted to the API is stored, a poison record
// is dead-lettered by the writer, and the replayer moves it back, after
// which the writer dead-letters it again, one attempt later.
func TestSecureTransport(t *testing.T) {
	s := newSecureStack(t)
	writer := start(t, "writer", s.env...)
	api := start(t, "ingest-api", s.env...)
	writer.awaitReady(t)
	api.awaitReady(t)

	id := uuid.NewString()
	code, body, err := httpDo(http.MethodPost, "http://"+api.addr+"/api/v1/audit/events", eventJSON(id, "e2e-tls"))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, code, body)
	testenv.Await(t, 30*time.Second, "the event stored and served", func() (bool, string) {
		code, body, err := httpDo(http.MethodGet, "http://"+api.addr+"/api/v1/audit/events/"+id, "")
		return err == nil && code == http.StatusOK, fmt.Sprint(code, body, err)
	})
	conn, err := pgx.Connect(t.Context(), s.pg.URL())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var correlation string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT correlation_id FROM audit_events WHERE event_id = $1`, id).Scan(&correlation))
	require.Equal(t, "e2e-tls", correlation)
	var tlsClients int
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
		WHERE s.ssl AND a.datname = 'postgres' AND s.pid <> pg_backend_pid()`).Scan(&tlsClients))
	require.GreaterOrEqual(t, tlsClients, 2, "the API's and the writer's pools are connected over TLS")

	producer, err := s.kafka.NewClient(kgo.DefaultProduceTopic("audit.events"))
	require.NoError(t, err)
	defer producer.Close()
	require.NoError(t, producer.ProduceSync(t.Context(), &kgo.Record{Key: []byte("poison"), Value: []byte("not json")}).FirstErr())
	dead, err := s.kafka.ConsumeAll(consumeCtx(t), "audit.dlq", 1)
	require.NoError(t, err)
	require.Equal(t, "not json", string(dead[0].Value))

	code, stdout, stderr := run(t, "dlq-replayer", []string{"replay"}, s.env...)
	require.Equal(t, 0, code, "replay: %s\n%s", stdout, stderr)
	dead, err = s.kafka.ConsumeAll(consumeCtx(t), "audit.dlq", 2)
	require.NoError(t, err)
	require.Equal(t, "not json", string(dead[1].Value))
	require.Equal(t, "1", header(dead[1], "dlq-attempts"), "replayed once, dead-lettered again")
}

// TestSecureTransportRefusals: a binary that lacks what the broker or the
// database requires fails with an error that says why, and never prints
// the password, neither then nor in --help.
func TestSecureTransportRefusals(t *testing.T) {
	s := newSecureStack(t)
	password := s.kafka.Credentials().Password
	const wrong = "wrong-Pa55word"
	plaintextDB := withQuery(t, s.pg.URL(), "sslmode", "disable")

	t.Run("wrong password", func(t *testing.T) {
		code, stdout, stderr := run(t, "dlq-replayer", []string{"list"}, append(s.env, "KAFKA_SASL_PASSWORD="+wrong)...)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "if it refused the SASL credentials")
		requireNoSecret(t, stdout+stderr, password, wrong)

		writer := start(t, "writer", append(s.env, "KAFKA_SASL_PASSWORD="+wrong)...)
		testenv.Await(t, startupTimeout, "the writer's retry log", func() (bool, string) {
			require.True(t, writer.Running(), "the writer retries: %s", writer.Stderr.Tail(4<<10))
			return strings.Contains(writer.Stderr.String(), "refused the SASL credentials"), writer.Stderr.Tail(2 << 10)
		})
		requireNoSecret(t, writer.Stdout.String()+writer.Stderr.String(), password, wrong)
	})
	t.Run("plaintext client", func(t *testing.T) {
		code, _, stderr := run(t, "dlq-replayer", []string{"list"}, "KAFKA_BROKERS="+strings.Join(s.kafka.Brokers(), ","))
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "if its listener expects TLS, set KAFKA_TLS_ENABLED=true")
	})
	t.Run("plaintext database", func(t *testing.T) {
		for _, name := range []string{"writer", "ingest-api"} {
			code, stderr := testenv.RunUntilExit(t, startupTimeout, bin+"/"+name,
				append(s.env, "DATABASE_URL="+plaintextDB, "HTTP_ADDR="+testenv.NewAddr(t), "METRICS_ADDR="+testenv.NewAddr(t))...)
			require.Equal(t, 1, code, "%s: %s", name, stderr)
			require.Contains(t, stderr, "no encryption", name)
		}
	})
	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"ingest-api", "--help"}, {"writer", "--help"}, {"dlq-replayer", "--help"}, {"dlq-replayer", "run", "--help"}} {
			code, stdout, stderr := run(t, args[0], args[1:], s.env...)
			require.Equal(t, 0, code)
			require.Contains(t, stdout, "KAFKA_SASL_PASSWORD_FILE")
			requireNoSecret(t, stdout+stderr, password)
		}
	})
}

func requireNoSecret(t *testing.T, output string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		require.NotContains(t, output, s, "a secret in the output")
	}
}

func withQuery(t *testing.T, dsn, key, value string) string {
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func consumeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
