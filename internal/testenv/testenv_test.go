package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaVersion is the sarama protocol version these tests configure: sarama's
// newest. sarama negotiates ApiVersions with the broker and clamps every
// request to the version the broker advertises, so a version newer than the
// broker is safe, while an older one would needlessly hold clients back
// (sarama's default, 2.8, is older than anything we run).
//
// Verified against the embedded broker (the tests below): an idempotent
// SyncProducer (RequiredAcks=WaitForAll, Net.MaxOpenRequests=1, Retry.Max>=1)
// with headers and any of gzip/snappy/lz4/zstd, and a ConsumerGroup that
// commits and resumes from its commits, need no workaround. One behaviour to
// design for, the same on real Kafka: a broker handles one request per
// connection at a time, and sarama sends a group's commits and heartbeats
// over the connection its fetches long-poll on (with one broker, the
// coordinator is always the leader). A synchronous Commit therefore waits up
// to Consumer.MaxWaitTime (500 ms by default), often twice. Commit per
// batch, not per record, or lower MaxWaitTime.
var kafkaVersion = sarama.MaxVersion

// saramaConfig is the client configuration the ingest API and the writer
// use: an idempotent, acks=all producer and a consumer group that commits
// explicitly.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "testenv-test"
	cfg.Version = kafkaVersion
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Retry.Max = 3
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Return.Successes = true // required by SyncProducer
	cfg.Net.MaxOpenRequests = 1          // required by Idempotent
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	// A commit queues behind the fetch long-poll on the shared broker
	// connection (see kafkaVersion); committing per message as this test
	// does would cost up to a second each at the 500 ms default.
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	return cfg
}

func produce(t *testing.T, brokers []string, cfg *sarama.Config, msgs []*sarama.ProducerMessage) {
	t.Helper()
	producer, err := sarama.NewSyncProducer(brokers, cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, producer.Close()) }()
	require.NoError(t, producer.SendMessages(msgs))
}

func messages(topic string, from, to int) []*sarama.ProducerMessage {
	var msgs []*sarama.ProducerMessage
	for i := from; i < to; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("key-%d", i)),
			Value: sarama.StringEncoder(fmt.Sprintf(`{"n":%d}`, i)),
			Headers: []sarama.RecordHeader{
				{Key: []byte("content-type"), Value: []byte("application/json")},
				{Key: []byte("seq"), Value: fmt.Appendf(nil, "%d", i)},
			},
		})
	}
	return msgs
}

// groupHandler forwards every message to out and commits after each one, as
// the writer commits after each stored batch.
type groupHandler struct {
	out chan<- *sarama.ConsumerMessage
}

func (groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		select {
		case h.out <- msg:
		case <-sess.Context().Done():
			return nil
		}
		sess.MarkMessage(msg, "")
		sess.Commit()
	}
	return nil
}

// consumeGroup runs one consumer-group member until it has received n
// messages, then leaves the group.
func consumeGroup(t *testing.T, brokers []string, group, topic string, n int) []*sarama.ConsumerMessage {
	t.Helper()
	cg, err := sarama.NewConsumerGroup(brokers, group, saramaConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, cg.Close()) }()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out := make(chan *sarama.ConsumerMessage)
	done := make(chan error, 1)
	go func() {
		// Consume returns at every rebalance; loop like the writer does.
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, groupHandler{out: out}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	var got []*sarama.ConsumerMessage
	for len(got) < n {
		select {
		case msg := <-out:
			got = append(got, msg)
		case err := <-done:
			require.FailNow(t, "consumer group stopped early", "after %d of %d messages: %v", len(got), n, err)
		case <-ctx.Done():
			require.FailNow(t, "timed out", "after %d of %d messages", len(got), n)
		}
	}
	cancel()
	require.NoError(t, <-done)
	return got
}

func sortByKey(msgs []*sarama.ConsumerMessage) {
	slices.SortFunc(msgs, func(a, b *sarama.ConsumerMessage) int {
		var ai, bi int
		fmt.Sscanf(string(a.Key), "key-%d", &ai)
		fmt.Sscanf(string(b.Key), "key-%d", &bi)
		return ai - bi
	})
}

func requireMessages(t *testing.T, got []*sarama.ConsumerMessage, from, to int) {
	t.Helper()
	require.Len(t, got, to-from)
	sortByKey(got)
	for i, msg := range got {
		n := from + i
		require.Equal(t, fmt.Sprintf("key-%d", n), string(msg.Key))
		require.Equal(t, fmt.Sprintf(`{"n":%d}`, n), string(msg.Value))
		require.Len(t, msg.Headers, 2)
		require.Equal(t, "content-type", string(msg.Headers[0].Key))
		require.Equal(t, "application/json", string(msg.Headers[0].Value))
		require.Equal(t, "seq", string(msg.Headers[1].Key))
		require.Equal(t, fmt.Sprint(n), string(msg.Headers[1].Value))
	}
}

func TestSaramaProducerAndConsumerGroup(t *testing.T) {
	const topic = "audit.events"
	k := NewKafka(t, map[string]int32{topic: 3})

	produce(t, k.Brokers(), saramaConfig(), messages(topic, 0, 10))
	requireMessages(t, consumeGroup(t, k.Brokers(), "writer", topic, 10), 0, 10)

	// A new session of the same group resumes after the committed
	// offsets: it sees only what was produced since.
	produce(t, k.Brokers(), saramaConfig(), messages(topic, 10, 15))
	requireMessages(t, consumeGroup(t, k.Brokers(), "writer", topic, 5), 10, 15)

	// kgo, used by tests to read back, sees the same records.
	recs, err := ConsumeAll(t.Context(), k.Brokers(), topic, 15)
	require.NoError(t, err)
	require.Len(t, recs, 15)
}

func TestCompressionReadable(t *testing.T) {
	codecs := []struct {
		name   string
		sarama sarama.CompressionCodec
		kgo    kgo.CompressionCodec
	}{
		{"gzip", sarama.CompressionGZIP, kgo.GzipCompression()},
		{"snappy", sarama.CompressionSnappy, kgo.SnappyCompression()},
		{"lz4", sarama.CompressionLZ4, kgo.Lz4Compression()},
		{"zstd", sarama.CompressionZSTD, kgo.ZstdCompression()},
	}
	k := NewKafka(t, nil)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := "compressed." + c.name
			require.NoError(t, k.CreateTopics(t.Context(), map[string]int32{topic: 1}))

			cfg := saramaConfig()
			cfg.Producer.Compression = c.sarama
			produce(t, k.Brokers(), cfg, messages(topic, 0, 3))

			cl, err := kgo.NewClient(
				kgo.SeedBrokers(k.Brokers()...),
				kgo.ProducerBatchCompression(c.kgo),
			)
			require.NoError(t, err)
			defer cl.Close()
			for _, m := range messages(topic, 3, 6) {
				key, _ := m.Key.Encode()
				value, _ := m.Value.Encode()
				rec := &kgo.Record{Topic: topic, Key: key, Value: value}
				for _, h := range m.Headers {
					rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: string(h.Key), Value: h.Value})
				}
				require.NoError(t, cl.ProduceSync(t.Context(), rec).FirstErr())
			}

			// Our consumers are sarama: read both producers' batches
			// with it.
			requireMessages(t, consumeGroup(t, k.Brokers(), "g-"+c.name, topic, 6), 0, 6)
		})
	}
}

func TestKafkaCloseRefusesConnections(t *testing.T) {
	const topic = "outage"
	k := NewKafka(t, map[string]int32{topic: 1})
	cfg := saramaConfig()
	producer, err := sarama.NewSyncProducer(k.Brokers(), cfg)
	require.NoError(t, err)
	defer producer.Close()

	require.NoError(t, k.Close())
	require.NoError(t, k.Close(), "Close is idempotent")

	_, err = net.DialTimeout("tcp", k.Brokers()[0], time.Second)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)

	// A producer that was connected fails promptly instead of hanging.
	start := time.Now()
	_, _, err = producer.SendMessage(messages(topic, 0, 1)[0])
	require.Error(t, err)
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestRestartableKafka(t *testing.T) {
	const topic = "restarts"
	k := NewRestartableKafka(t, map[string]int32{topic: 1})
	cfg := saramaConfig()
	producer, err := sarama.NewSyncProducer(k.Brokers(), cfg)
	require.NoError(t, err)
	defer producer.Close()
	require.NoError(t, producer.SendMessages(messages(topic, 0, 3)))

	k.Stop()
	_, err = net.DialTimeout("tcp", k.Brokers()[0], time.Second)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)

	require.NoError(t, k.Restart())
	recs, err := k.ConsumeAll(t.Context(), topic, 3)
	require.NoError(t, err, "a restarted broker keeps what it stored")
	require.Len(t, recs, 3)

	require.NoError(t, k.RestartEmpty())
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	recs, err = k.ConsumeAll(ctx, topic, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded, "an empty broker has the topic and nothing in it")
	require.Empty(t, recs)
}

func TestConsumeAllStopsWithContext(t *testing.T) {
	k := NewKafka(t, map[string]int32{"empty": 1})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	recs, err := ConsumeAll(ctx, k.Brokers(), "empty", 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Empty(t, recs)
}

func TestPostgresStopStartClose(t *testing.T) {
	ctx := t.Context()
	pg, err := StartPostgres(ctx)
	require.NoError(t, err)
	defer pg.Close()

	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, pg.URL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	require.NoError(t, exec(`CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')`))

	require.NoError(t, pg.Stop(ctx))
	require.NoError(t, pg.Stop(ctx), "stopping a stopped server is a no-op")
	require.Error(t, exec(`SELECT 1`), "server is down")

	require.NoError(t, pg.Start(ctx))
	conn, err := pgx.Connect(ctx, pg.URL())
	require.NoError(t, err)
	var v string
	require.NoError(t, conn.QueryRow(ctx, `SELECT v FROM t`).Scan(&v))
	require.Equal(t, "kept", v, "data survives Stop/Start")
	var maxConns int
	require.NoError(t, conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int`).Scan(&maxConns))
	require.GreaterOrEqual(t, maxConns, 200)
	require.NoError(t, conn.Close(ctx))

	if pg.dir != "" { // embedded
		_, err := os.Stat(pg.dir)
		require.NoError(t, err)
	}
	require.NoError(t, pg.Close())
	require.NoError(t, pg.Close(), "Close is idempotent")
	if pg.dir != "" {
		_, err := os.Stat(pg.dir)
		require.ErrorIs(t, err, os.ErrNotExist, "Close removes the data")
	}
	require.Error(t, exec(`SELECT 1`), "server is gone")
}

func TestPostgresCloseWithOpenConnections(t *testing.T) {
	pg := NewPostgres(t)
	conn, err := pgx.Connect(t.Context(), pg.URL())
	require.NoError(t, err)
	// Close must not wait for clients to disconnect.
	require.NoError(t, pg.Close())
	require.Error(t, conn.Ping(t.Context()))
	_ = conn.Close(context.Background())
}

func TestPostgresExternalCannotStopOrStart(t *testing.T) {
	pg := &Postgres{adminURL: "postgres://example/db"}
	require.ErrorIs(t, pg.Stop(t.Context()), ErrExternal)
	require.ErrorIs(t, pg.Start(t.Context()), ErrExternal)
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://u:p@db:5432/app?sslmode=disable", "postgres://u:p@db:5432/testdb?sslmode=disable"},
		{"postgresql://db", "postgresql://db/testdb"},
		{"host=db user=u dbname=app", "host=db user=u dbname=app dbname=testdb"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.dsn, "testdb")
		require.NoError(t, err)
		require.Equal(t, tt.want, got)
		cfg, err := pgx.ParseConfig(got)
		require.NoError(t, err)
		require.Equal(t, "testdb", cfg.Database)
	}
}

func TestURLAs(t *testing.T) {
	tests := []struct {
		dsn, user, database string
		wantUser, wantDB    string
	}{
		{"postgres://u:p@db:5432/app?sslmode=disable", "nobody", "", "nobody", "app"},
		{"postgres://u:p@db:5432/app?sslmode=disable", "", "missing", "u", "missing"},
		{"host=db user=u password=p dbname=app", "nobody", "missing", "nobody", "missing"},
	}
	for _, tt := range tests {
		got, err := (&Postgres{url: tt.dsn}).URLAs(tt.user, tt.database)
		require.NoError(t, err)
		cfg, err := pgx.ParseConfig(got)
		require.NoError(t, err, got)
		require.Equal(t, tt.wantUser, cfg.User, got)
		require.Equal(t, tt.wantDB, cfg.Database, got)
		if tt.user != "" {
			require.Empty(t, cfg.Password, "another role gets no password: %s", got)
		}
	}
}
