package client_test

// The client against the real pipeline: the ingest-api and writer binaries
// as operators run them, an embedded broker and a throwaway PostgreSQL.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditstream/auditstream/client"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestPipelineExactlyOnce sends 100,000 events through one client while
// the broker goes down and comes back and the API is killed and restarted,
// and checks that PostgreSQL holds every event exactly once: the client
// retries until accepted, holding Send back while its buffer is full, and
// its event ids make the duplicates those retries publish (a batch Kafka
// took whose answer was lost) harmless.
func TestPipelineExactlyOnce(t *testing.T) {
	const total = 100_000
	ctx := t.Context()
	bin := t.TempDir()
	require.NoError(t, testenv.BuildCommands(ctx, bin, "ingest-api", "writer"))
	broker := startBroker(t)
	pg := testenv.NewPostgres(t)
	apiAddr := testenv.NewAddr(t)
	env := []string{
		"KAFKA_BROKERS=" + broker.addr(),
		"DATABASE_URL=" + pg.URL(),
		"TOPIC_PARTITIONS=3",
		"LOG_FORMAT=json",
		// The API answers 503 two seconds into an outage rather than ten.
		"PUBLISH_TIMEOUT=2s",
		"SHUTDOWN_DELAY=0s",
		// Credentials (required from issue 17 on) are not what this
		// test is about.
		"AUTH_DISABLED=true",
		"SOURCE_KEYS_FILE=" + testenv.NewSourceKeys(t),
	}
	writerMetrics := testenv.NewAddr(t)
	writerEnv := append(append(env, "METRICS_ADDR="+writerMetrics), testenv.NewIntegrityKeys(t).Env()...)
	writer := testenv.StartProcess(t, filepath.Join(bin, "writer"), nil, writerEnv...)
	writer.AwaitReady(t, time.Minute, "http://"+writerMetrics+"/health/ready")
	// METRICS_ADDR too: from issue 17 on, the API serves /metrics on a
	// listener of its own, by default :9090, which other tests may hold.
	apiEnv := append(env, "HTTP_ADDR="+apiAddr, "METRICS_ADDR="+testenv.NewAddr(t))
	api := testenv.StartProcess(t, filepath.Join(bin, "ingest-api"), nil, apiEnv...)
	api.AwaitReady(t, time.Minute, "http://"+apiAddr+"/health/ready")

	m := &pipelineMetrics{}
	var fails failures
	c, err := client.New("http://"+apiAddr,
		client.WithMetrics(m),
		client.WithFailureHandler(fails.handle),
		// Back within a fraction of a second of the restarted API.
		client.WithRetryWait(50*time.Millisecond, time.Second),
		client.WithLogger(slog.New(slog.DiscardHandler)),
	)
	require.NoError(t, err)

	tag := "pipeline-" + uuid.NewString()[:8]
	own := make([]uuid.UUID, 0, total/2) // ids the test chose; the client picks the others
	sent := make(chan error, 1)
	go func() {
		for i := range total {
			ev := client.Event{
				Version: "1.0", EventType: tag, EventCategory: client.CategoryExecution,
				EventAction: "run", EventOutcome: client.OutcomeSuccess,
				CorrelationID: "corr-" + strconv.Itoa(i%1000),
				EventData:     map[string]int{"seq": i},
			}
			if i%2 == 0 {
				ev.EventID = uuid.New()
				own = append(own, ev.EventID)
			}
			if err := c.Send(ctx, ev); err != nil {
				sent <- fmt.Errorf("send event %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()

	awaitMetric(t, "20,000 events accepted", &m.sent, 20_000)
	broker.stop(t)
	awaitMetric(t, "a 503 while the broker is down", &m.unavailable, 1)
	testenv.Await(t, time.Minute, "the buffer full while the broker is down", func() (bool, string) {
		return c.Pending() >= client.DefaultBufferSize, fmt.Sprintf("%d events pending", c.Pending())
	})
	broker.start(t)
	awaitMetric(t, "50,000 events accepted", &m.sent, 50_000)
	api.Kill(t)
	awaitMetric(t, "a request failing on the killed API", &m.unreachable, 1)
	api = testenv.StartProcess(t, filepath.Join(bin, "ingest-api"), nil, apiEnv...)

	select {
	case err := <-sent:
		require.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatalf("sending stalled at %d accepted events", m.sent.Load())
	}
	closeCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, c.Close(closeCtx))
	require.Empty(t, fails.list())
	require.Equal(t, int64(total), m.sent.Load())
	t.Logf("accepted %d events; %d retried because of a 503, %d because the API was unreachable",
		m.sent.Load(), m.unavailable.Load(), m.unreachable.Load())

	db, err := pgx.Connect(ctx, pg.URL())
	require.NoError(t, err)
	defer db.Close(context.WithoutCancel(ctx))
	var rows, ids, seqs, chosen int
	testenv.Await(t, time.Minute, "every event stored", func() (bool, string) {
		err := db.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE event_type = $1`, tag).Scan(&rows)
		return err == nil && rows >= total, fmt.Sprintf("%d rows (%v)", rows, err)
	})
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*), count(DISTINCT event_id), count(DISTINCT event_data->>'seq'),
		count(*) FILTER (WHERE event_id = ANY($2)) FROM audit_events WHERE event_type = $1`, tag, own).
		Scan(&rows, &ids, &seqs, &chosen))
	require.Equal(t, total, rows, "rows")
	require.Equal(t, total, ids, "distinct event ids")
	require.Equal(t, total, seqs, "distinct events")
	require.Equal(t, total/2, chosen, "events stored under the id the test chose")
	require.True(t, api.Running() && writer.Running())
}

// pipelineMetrics counts accepted events and the two kinds of retry the
// test provokes.
type pipelineMetrics struct {
	sent, unavailable, unreachable atomic.Int64
}

func (m *pipelineMetrics) Sent(n int) { m.sent.Add(int64(n)) }
func (m *pipelineMetrics) Retried(_ int, err error) {
	var p *client.Problem
	var netErr net.Error
	switch {
	case errors.As(err, &p) && p.Status == http.StatusServiceUnavailable:
		m.unavailable.Add(1)
	case errors.As(err, &netErr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		m.unreachable.Add(1)
	}
}
func (m *pipelineMetrics) Failed(int)     {}
func (m *pipelineMetrics) QueueDepth(int) {}

func awaitMetric(t *testing.T, what string, v *atomic.Int64, want int64) {
	t.Helper()
	testenv.Await(t, time.Minute, what, func() (bool, string) {
		got := v.Load()
		return got >= want, fmt.Sprintf("%d of %d", got, want)
	})
}

// restartableBroker is an embedded one-broker kfake cluster that can go
// down and come back on the same address with everything it held (records,
// committed offsets, groups), as a real broker restarts: it persists to a
// directory. testenv's broker loses its memory when closed.
type restartableBroker struct {
	dir     string
	port    int
	cluster *kfake.Cluster
}

func startBroker(t *testing.T) *restartableBroker {
	t.Helper()
	b := &restartableBroker{dir: t.TempDir()}
	b.start(t)
	_, port, err := net.SplitHostPort(b.cluster.ListenAddrs()[0])
	require.NoError(t, err)
	b.port, err = strconv.Atoi(port)
	require.NoError(t, err)
	t.Cleanup(func() {
		if b.cluster != nil {
			b.cluster.Close()
		}
	})
	return b
}

func (b *restartableBroker) addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// start starts the broker, on the port it had before if any.
func (b *restartableBroker) start(t *testing.T) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(b.port), kfake.DataDir(b.dir),
		kfake.DefaultNumPartitions(1))
	require.NoError(t, err, "start broker")
	b.cluster = cluster
}

// stop closes the listener and every connection; the data stays on disk.
func (b *restartableBroker) stop(t *testing.T) {
	t.Helper()
	b.cluster.Close()
	b.cluster = nil
}
