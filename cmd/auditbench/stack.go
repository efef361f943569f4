package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// stack is the Kafka and PostgreSQL server a write-side stage runs on: the
// embedded broker (kfake, in this process) and a throwaway cluster, or
// KAFKA_BROKERS / DATABASE_URL. Topic names are unique per stack so stages
// (and runs) sharing an external cluster never see each other's records.
type stack struct {
	kafka  *testenv.Kafka
	pg     *testenv.Postgres
	topics topicNames
	// keysDir holds the source key file, so the API signs and the writer
	// verifies submitted_by as in production, and the writer's integrity
	// keys, so it links the hash chain and checkpoints as in production.
	keysDir   string
	integrity testenv.IntegrityKeys
	// token is an API key with the write scope, in keysDir's tokens file:
	// ingest-api runs with access control on, as it does by default.
	token string
}

// authorization is the Authorization header of the stack's API key.
func (s *stack) authorization() string { return "Bearer " + s.token }

// topicNames are the stack's topics; traces holds the writer stage's
// second data set.
type topicNames struct{ events, traces, notifications, dlq, parked, checkpoints string }

// env returns the settings every binary of the stack is started with.
func (s *stack) env(dbURL string) []string {
	return []string{
		"KAFKA_BROKERS=" + strings.Join(s.kafka.Brokers(), ","),
		"DATABASE_URL=" + dbURL,
		"EVENTS_TOPIC=" + s.topics.events,
		"NOTIFICATIONS_TOPIC=" + s.topics.notifications,
		"DLQ_TOPIC=" + s.topics.dlq,
		"PARKED_TOPIC=" + s.topics.parked,
		"CHECKPOINTS_TOPIC=" + s.topics.checkpoints,
		"SOURCE_KEYS_FILE=" + filepath.Join(s.keysDir, "source-keys.yaml"),
	}
}

func (s *stack) describe() string {
	k := "embedded kfake broker (in the auditbench process)"
	if os.Getenv(testenv.EnvKafkaBrokers) != "" {
		k = "KAFKA_BROKERS"
	}
	p := "throwaway PostgreSQL (fsync and synchronous_commit on, shared_buffers 1GB)"
	if os.Getenv(testenv.EnvDatabaseURL) != "" {
		p = "DATABASE_URL"
	}
	return k + " + " + p
}

const benchPartitions = 12

func startStack(ctx context.Context, logf func(string, ...any)) (*stack, error) {
	start := time.Now()
	id := randomID()
	t := topicNames{
		events: "auditbench." + id + ".events", traces: "auditbench." + id + ".traces", notifications: "auditbench." + id + ".notifications",
		dlq: "auditbench." + id + ".dlq", parked: "auditbench." + id + ".parked",
		checkpoints: "auditbench." + id + ".checkpoints",
	}
	k, err := testenv.StartKafka(ctx, map[string]int32{t.events: benchPartitions, t.traces: benchPartitions, t.notifications: benchPartitions, t.dlq: 1, t.parked: 1})
	if err != nil {
		return nil, err
	}
	pg, err := startThrowaway(ctx)
	if err != nil {
		_ = k.Close()
		return nil, err
	}
	s := &stack{kafka: k, pg: pg, topics: t}
	if s.keysDir, err = os.MkdirTemp("", "auditbench-keys-"); err == nil {
		err = keyring.Generate(filepath.Join(s.keysDir, "source-keys.yaml"), "bench")
	}
	if err == nil {
		s.integrity, err = testenv.GenerateIntegrityKeys(s.keysDir)
	}
	if err == nil {
		s.token, err = writeTokensFile(filepath.Join(s.keysDir, "tokens.yaml"))
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	logf("stack: %s, ready in %s", s.describe(), time.Since(start).Round(time.Millisecond))
	return s, nil
}

func (s *stack) Close() {
	_ = s.kafka.Close()
	_ = s.pg.Close()
	if s.keysDir != "" {
		_ = os.RemoveAll(s.keysDir)
	}
}

// freshDB creates a migrated database on the stack's server and returns
// its URL; it is dropped by Close of the stack (a throwaway cluster) or
// by the returned function.
func (s *stack) freshDB(ctx context.Context, name string) (string, func(), error) {
	name = "auditbench_" + name + "_" + randomID()
	admin, err := pgx.Connect(ctx, s.pg.URL())
	if err != nil {
		return "", nil, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	dbURL, err := withDatabase(s.pg.URL(), name)
	if err != nil {
		return "", nil, err
	}
	if _, err := store.Migrate(ctx, dbURL, nil); err != nil {
		return "", nil, err
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), s.pg.URL())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return dbURL, drop, nil
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startIngestAPI starts the real ingest-api on a free port against dbURL
// and waits until it is ready; it returns the process and its base URL.
// authEnv are its credential settings, and any other it should run with;
// nil runs it as a user does by default, with access control on and the
// stack's API key (authorization). Every binary logs at its default level
// (info: the API's access log is on). Rate limits are off: one principal
// sends all the load.
func (s *stack) startIngestAPI(ctx context.Context, dbURL string, authEnv []string, logf func(string, ...any)) (*proc, string, error) {
	dir, err := binaries(logf)
	if err != nil {
		return nil, "", err
	}
	addr, err := testenv.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	metricsAddr, err := testenv.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	if authEnv == nil {
		authEnv = []string{"AUTH_TOKENS_FILE=" + filepath.Join(s.keysDir, "tokens.yaml")}
	}
	env := append(s.env(dbURL), "HTTP_ADDR="+addr, "METRICS_ADDR="+metricsAddr, "SHUTDOWN_DELAY=0s", "RATE_LIMIT_RPS=0")
	p, err := startProc("ingest-api", filepath.Join(dir, "ingest-api"), nil, append(env, authEnv...)...)
	if err != nil {
		return nil, "", err
	}
	p.ops = "http://" + metricsAddr
	base := "http://" + addr
	if err := waitHTTP(ctx, base+"/health/ready", p, 60*time.Second); err != nil {
		_ = p.stop()
		return nil, "", err
	}
	return p, base, nil
}

// startWriter starts the real writer against dbURL (consumer group group)
// and returns the process and its /metrics URL. It links the hash chain
// with the stack's keys unless env says otherwise (INTEGRITY_DISABLED).
func (s *stack) startWriter(ctx context.Context, dbURL, group string, logf func(string, ...any), env ...string) (*proc, string, error) {
	dir, err := binaries(logf)
	if err != nil {
		return nil, "", err
	}
	addr, err := testenv.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	if len(env) == 0 {
		env = s.integrity.Env()
	}
	env = append(append(s.env(dbURL), "METRICS_ADDR="+addr, "CONSUMER_GROUP="+group), env...)
	p, err := startProc("writer", filepath.Join(dir, "writer"), nil, env...)
	if err != nil {
		return nil, "", err
	}
	p.ops = "http://" + addr
	if err := waitHTTP(ctx, "http://"+addr+"/metrics", p, 60*time.Second); err != nil {
		_ = p.stop()
		return nil, "", err
	}
	return p, "http://" + addr + "/metrics", nil
}

const (
	writerRowsMetric = `auditstream_writer_rows_written_total{table="audit_events"}`
	chainHeadsMetric = `auditstream_writer_chain_heads_per_batch_sum`
)
