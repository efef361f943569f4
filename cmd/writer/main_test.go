package main

// Process-level tests of the writer: the real binary, built once in TestMain,
// is started as a child process against the embedded broker and throwaway
// PostgreSQL from internal/testenv, and then killed, stopped and restarted
// the way an orchestrator would. In-process tests of internal/writer cover
// the logic; these check what only a real process shows: a SIGKILL between
// a COPY commit and the offset commit, a group rebalance between two
// processes, and the exit path on SIGTERM.
//
// This file holds the harness; writer_test.go holds the tests.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
)

// shared is what every test of the package uses: the writer binary, one
// broker, one PostgreSQL, and the test's own clients to both. Each test has
// its own topics, consumer group and event_type tag, so tests never see each
// other's records.
var shared struct {
	bin string
	// faultBin is the writer built with the faultinject tag
	// (store.FaultUnencodable).
	faultBin string
	// replayer is the dlq-replayer binary, for the replay of a dead letter.
	replayer string
	// apiBin is ingest-api, for the tests that follow a request through.
	apiBin string
	kafka  *testenv.Kafka
	pg     *testenv.Postgres
	db     *pgxpool.Pool
	kcl    *kgo.Client
	adm    *kadm.Client
	// keys are every writer's integrity keys, unless a test gives its
	// own: the chains of all tests verify with them.
	keys testenv.IntegrityKeys
}

// Settings of every child writer. Batches of 2,000 every 50 ms move 50,000
// records in a few seconds on two cores, with a few dozen transactions, so a
// kill lands between a COPY commit and the offset commit often.
const (
	batchSize  = 2000
	batchAge   = 50 * time.Millisecond
	partitions = 6
	// gracePeriod is Kubernetes' default terminationGracePeriodSeconds: a
	// writer must be gone this long after SIGTERM.
	gracePeriod = 30 * time.Second
	// catchUpTimeout bounds waiting for a writer to store everything. A
	// writer replaced after SIGKILL by one of another name waits for the
	// dead member's session to expire (GROUP_SESSION_TIMEOUT) before the
	// group rebalances.
	catchUpTimeout = 90 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "writer process tests", testmain.Both, func(ctx context.Context, e *testmain.Shared) error {
		shared.kafka, shared.pg = e.Kafka, e.Postgres
		var err error
		if shared.bin, err = e.Build(ctx, "writer"); err != nil {
			return err
		}
		if shared.faultBin, err = e.BuildTagged(ctx, "writer", "faultinject"); err != nil {
			return err
		}
		if shared.replayer, err = e.Build(ctx, "dlq-replayer"); err != nil {
			return err
		}
		keysDir, err := os.MkdirTemp("", "writer-keys-")
		if err != nil {
			return err
		}
		e.Cleanup(func() { _ = os.RemoveAll(keysDir) })
		if shared.keys, err = testenv.GenerateIntegrityKeys(keysDir); err != nil {
			return err
		}
		if shared.apiBin, err = e.Build(ctx, "ingest-api"); err != nil {
			return err
		}
		if shared.db, err = pgxpool.New(ctx, shared.pg.URL()); err != nil {
			return err
		}
		e.Cleanup(shared.db.Close)
		if shared.kcl, err = kgo.NewClient(kgo.SeedBrokers(shared.kafka.Brokers()...)); err != nil {
			return err
		}
		e.Cleanup(shared.kcl.Close)
		shared.adm = kadm.NewClient(shared.kcl)
		return nil
	}))
}

// pipeline is one test's topics, consumer group and the event_type its
// records carry, by which the test counts its rows.
type pipeline struct {
	events, notifications, dlq, parked, checkpoints string
	group                                           string
	tag                                             string
}

func newPipeline(t *testing.T) pipeline {
	t.Helper()
	return newPipelineOn(t, shared.kafka)
}

// newPipelineOn is newPipeline on the cluster k.
func newPipelineOn(t *testing.T, k *testenv.Kafka) pipeline {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	suffix := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	base := name + "-" + suffix
	p := pipeline{
		events:        base + ".events",
		notifications: base + ".notifications",
		dlq:           base + ".dlq",
		parked:        base + ".dlq.parked",
		checkpoints:   base + ".checkpoints",
		group:         base + ".writer",
		tag:           base,
	}
	require.NoError(t, k.CreateTopics(t.Context(), map[string]int32{
		p.events: partitions, p.notifications: partitions, p.dlq: 1, p.parked: 1,
	}))
	return p
}

// writerProc is one running writer process; its log is on Stderr.
type writerProc struct {
	*testenv.Process
	t    *testing.T
	name string
	addr string // METRICS_ADDR
}

// startWriter starts a writer process for p. name is also its Kafka client
// id, so the group's member list tells the processes apart, and its static
// member name (WRITER_INSTANCE_ID: the processes share a host name); env
// overrides the settings. The process is killed, if still running, when the test
// ends, and its output is logged if the test failed.
func startWriter(t *testing.T, p pipeline, name string, env ...string) *writerProc {
	t.Helper()
	return startWriterBin(t, shared.bin, p, name, env...)
}

// startWriterBin is startWriter for the binary at bin.
func startWriterBin(t *testing.T, bin string, p pipeline, name string, env ...string) *writerProc {
	t.Helper()
	w := &writerProc{t: t, name: name, addr: testenv.NewAddr(t)}
	// Later entries win, so these override whatever the test's own
	// environment holds, and env overrides them.
	settings := append([]string{
		"KAFKA_BROKERS=" + strings.Join(shared.kafka.Brokers(), ","),
		"KAFKA_CLIENT_ID=" + name,
		"WRITER_INSTANCE_ID=" + name,
		"DATABASE_URL=" + shared.pg.URL(),
		"METRICS_ADDR=" + w.addr,
		"CONSUMER_GROUP=" + p.group,
		"EVENTS_TOPIC=" + p.events,
		"NOTIFICATIONS_TOPIC=" + p.notifications,
		"DLQ_TOPIC=" + p.dlq,
		"PARKED_TOPIC=" + p.parked,
		"CHECKPOINTS_TOPIC=" + p.checkpoints,
		"TOPIC_PARTITIONS=" + strconv.Itoa(partitions),
		"BATCH_SIZE=" + strconv.Itoa(batchSize),
		"BATCH_AGE=" + batchAge.String(),
		// submitted_by is the e2e tests' concern.
		"SOURCE_SIGNING_DISABLED=true",
		"LOG_LEVEL=info",
		"LOG_FORMAT=json",
	}, shared.keys.Env()...)
	w.Process = testenv.StartProcess(t, bin, nil, append(settings, env...)...)
	t.Logf("started writer %s (pid %d, metrics on %s)", name, w.Pid(), w.addr)
	return w
}

func (w *writerProc) signal(sig syscall.Signal) {
	w.t.Helper()
	require.NoError(w.t, w.Signal(sig), "signal %s to writer %s", sig, w.name)
}

// kill ends the process with SIGKILL; it must still be running.
func (w *writerProc) kill() {
	w.t.Helper()
	require.True(w.t, w.Running(), "writer %s still running before its SIGKILL: %s", w.name, w.State())
	w.Kill(w.t)
}

// get fetches path from the writer's METRICS_ADDR.
func (w *writerProc) get(path string) (int, string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + w.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// awaitReady waits until /health/ready answers 200.
func (w *writerProc) awaitReady(d time.Duration) {
	w.t.Helper()
	testenv.Await(w.t, d, "writer "+w.name+" ready", func() (bool, string) {
		if !w.Running() {
			require.FailNow(w.t, "writer exited during start-up", "writer %s: %s", w.name, w.State())
		}
		code, body, err := w.get("/health/ready")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
}

// metric returns the sum of every series of the named metric (all label
// values) on /metrics; the writer must expose it.
func (w *writerProc) metric(name string) float64 {
	w.t.Helper()
	sum, found := w.metricIfExposed(name)
	require.True(w.t, found, "writer %s exposes no %s", w.name, name)
	return sum
}

// metricIfExposed is metric for a series that may not exist yet (a
// counter with labels appears at its first increment): 0, false then.
func (w *writerProc) metricIfExposed(name string) (float64, bool) {
	w.t.Helper()
	code, body, err := w.get("/metrics")
	require.NoError(w.t, err, "scrape writer %s", w.name)
	require.Equal(w.t, http.StatusOK, code)
	var sum float64
	found := false
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		require.NoError(w.t, err, "metric line %q", line)
		sum += v
		found = true
	}
	return sum, found
}

// stream produces audit events to a topic in the background, paced in
// chunks so that a writer is consuming while records still arrive. Every
// other record has a client event_id; the rest get their deterministic id
// from where Kafka acknowledged them and from the record.
type stream struct {
	total int
	sent  atomic.Int64
	done  chan struct{}

	mu  sync.Mutex
	ids []uuid.UUID
	err error
}

func startStream(t *testing.T, p pipeline, total, chunk int, pause time.Duration) *stream {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(shared.kafka.Brokers()...),
		kgo.DefaultProduceTopic(p.events),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	require.NoError(t, err)
	topicID, err := shared.kafka.TopicID(t.Context(), p.events)
	require.NoError(t, err)
	s := &stream{total: total, done: make(chan struct{}), ids: make([]uuid.UUID, 0, total)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	go func() {
		defer close(s.done)
		defer cl.Close()
		tick := time.NewTicker(pause)
		defer tick.Stop()
		for from := 0; from < total; from += chunk {
			recs := make([]*kgo.Record, 0, chunk)
			clientIDs := make([]uuid.UUID, 0, chunk)
			for i := from; i < min(from+chunk, total); i++ {
				var id uuid.UUID
				if i%2 == 0 {
					id = uuid.New()
				}
				recs = append(recs, eventRecord(p.tag, i, id))
				clientIDs = append(clientIDs, id)
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				s.fail(fmt.Errorf("produce records %d..%d: %w", from, from+len(recs), err))
				return
			}
			s.mu.Lock()
			// results are in the order of acknowledgement; the records
			// themselves now hold their partition and offset.
			for i, r := range recs {
				id := clientIDs[i]
				if id == uuid.Nil {
					id = audit.DeterministicEventIDV2(audit.RecordOrigin{Topic: r.Topic, TopicID: topicID, Partition: r.Partition,
						Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value})
				}
				s.ids = append(s.ids, id)
			}
			s.mu.Unlock()
			s.sent.Add(int64(len(recs)))
			select {
			case <-ctx.Done():
				s.fail(ctx.Err())
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *stream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// wait waits until every record is acknowledged and returns the expected
// event ids.
func (s *stream) wait(t *testing.T, d time.Duration) []uuid.UUID {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		require.FailNow(t, "producer did not finish", "%d of %d records sent after %s", s.sent.Load(), s.total, d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(t, s.err)
	require.Len(t, s.ids, s.total)
	return slices.Clone(s.ids)
}

// eventRecord is a valid AuditEventRequest, keyed by correlation_id as the
// API publishes it. Its event_type is the test's tag. A nil id leaves
// event_id out.
func eventRecord(tag string, i int, id uuid.UUID) *kgo.Record {
	correlation := correlationOf(tag, i)
	var eventID string
	if id != uuid.Nil {
		eventID = fmt.Sprintf(`,"event_id":%q`, id)
	}
	value := fmt.Sprintf(`{"version":"1.0","event_type":%q,"event_timestamp":%q,"event_category":"gateway",`+
		`"event_action":"write","event_outcome":"success","correlation_id":%q,"event_data":{"seq":%d}%s}`,
		tag, time.Now().UTC().Format(time.RFC3339Nano), correlation, i, eventID)
	return &kgo.Record{
		Key:     []byte(correlation),
		Value:   []byte(value),
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}},
	}
}

// correlationOf is the correlation_id of record i of the test tagged
// tag: 997 chains per test.
func correlationOf(tag string, i int) string { return fmt.Sprintf("%s-corr-%d", tag, i%997) }

// storedCount is the number of rows the test's records produced.
func storedCount(t *testing.T, p pipeline) int {
	t.Helper()
	var n int
	require.NoError(t, shared.db.QueryRow(t.Context(),
		`SELECT count(*) FROM audit_events WHERE event_type = $1`, p.tag).Scan(&n))
	return n
}

// lag is how many records of the pipeline's topics the group has not
// committed yet.
func lag(t *testing.T, p pipeline) (int64, error) {
	t.Helper()
	ends, err := shared.adm.ListEndOffsets(t.Context(), p.events, p.notifications)
	if err != nil {
		return 0, err
	}
	if err := ends.Error(); err != nil {
		return 0, err
	}
	committed, err := shared.adm.FetchOffsets(t.Context(), p.group)
	if err != nil {
		return 0, err
	}
	var total int64
	ends.Each(func(end kadm.ListedOffset) {
		var at int64
		if c, ok := committed.Lookup(end.Topic, end.Partition); ok && c.Err == nil && c.At > 0 {
			at = c.At
		}
		total += end.Offset - at
	})
	return total, nil
}

// awaitCaughtUp waits until want rows are stored and the group has
// committed everything.
func awaitCaughtUp(t *testing.T, p pipeline, want int) {
	t.Helper()
	start := time.Now()
	testenv.Await(t, catchUpTimeout, "writer to catch up", func() (bool, string) {
		n := storedCount(t, p)
		l, err := lag(t, p)
		if err != nil {
			return false, fmt.Sprintf("stored %d of %d; lag: %v", n, want, err)
		}
		return n == want && l == 0, fmt.Sprintf("stored %d of %d, consumer lag %d", n, want, l)
	})
	t.Logf("caught up: %d rows stored and committed (waited %s)", want, time.Since(start).Round(time.Millisecond))
}

// requireExactlyOnce checks that the stored rows of the pipeline are
// exactly the expected events, each once.
func requireExactlyOnce(t *testing.T, p pipeline, want []uuid.UUID) {
	t.Helper()
	expected := make(map[uuid.UUID]bool, len(want))
	for _, id := range want {
		expected[id] = true
	}
	require.Len(t, expected, len(want), "the produced records have distinct ids")

	rows, err := shared.db.Query(t.Context(), `SELECT event_id FROM audit_events WHERE event_type = $1`, p.tag)
	require.NoError(t, err)
	stored := make(map[uuid.UUID]int, len(want))
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		stored[id]++
	}
	require.NoError(t, rows.Err())

	var missing, duplicated, unexpected []uuid.UUID
	for id := range expected {
		if stored[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range stored {
		if n > 1 {
			duplicated = append(duplicated, id)
		}
		if !expected[id] {
			unexpected = append(unexpected, id)
		}
	}
	first := func(ids []uuid.UUID) []uuid.UUID { return ids[:min(len(ids), 5)] }
	require.Empty(t, missing, "%d of %d events not stored, e.g. %v", len(missing), len(want), first(missing))
	require.Empty(t, duplicated, "%d events stored more than once, e.g. %v", len(duplicated), first(duplicated))
	require.Empty(t, unexpected, "%d stored events were never produced (wrong deterministic id?), e.g. %v",
		len(unexpected), first(unexpected))
	require.Len(t, stored, len(want))
}

// requireDLQEmpty checks that no record was dead-lettered: every record the
// tests produce is valid.
func requireDLQEmpty(t *testing.T, p pipeline) {
	t.Helper()
	ends, err := shared.adm.ListEndOffsets(t.Context(), p.dlq)
	require.NoError(t, err)
	ends.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		require.Zero(t, o.Offset, "dead letters in %s/%d", o.Topic, o.Partition)
	})
}

// assignment returns the group's state and, per member client id, the
// partitions of the events topic it owns.
func assignment(t *testing.T, p pipeline) (string, map[string][]int32, error) {
	t.Helper()
	groups, err := shared.adm.DescribeGroups(t.Context(), p.group)
	if err != nil {
		return "", nil, err
	}
	g := groups[p.group]
	if g.Err != nil {
		return "", nil, g.Err
	}
	owned := make(map[string][]int32, len(g.Members))
	for _, m := range g.Members {
		owned[m.ClientID] = nil
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, topic := range a.Topics {
			if topic.Topic == p.events {
				owned[m.ClientID] = append(owned[m.ClientID], topic.Partitions...)
			}
		}
	}
	return g.State, owned, nil
}

// awaitOwners waits until the group is stable and its members, by client
// id, are exactly owners, each with at least one events partition and all
// partitions owned.
func awaitOwners(t *testing.T, p pipeline, owners ...string) {
	t.Helper()
	testenv.Await(t, catchUpTimeout, fmt.Sprintf("group owned by %v", owners), func() (bool, string) {
		state, owned, err := assignment(t, p)
		if err != nil {
			return false, err.Error()
		}
		status := fmt.Sprintf("state %s, assignment %v", state, owned)
		if state != "Stable" || len(owned) != len(owners) {
			return false, status
		}
		n := 0
		for _, o := range owners {
			parts, ok := owned[o]
			if !ok || len(parts) == 0 {
				return false, status
			}
			n += len(parts)
		}
		return n == partitions, status
	})
}
