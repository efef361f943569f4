package main

// Tests of dlq-replayer against the embedded broker and a throwaway
// PostgreSQL (internal/testenv), with the real writer running in-process
// where a flow needs records stored or dead-lettered. Commands are called
// in-process (runReplay, runList, runInspect, tick) where that is enough,
// and the real binary, built once in TestMain, is executed where only a
// process shows the behaviour: exit codes, --help, SIGKILL mid-pass, the
// daemon's /metrics.
//
// This file holds the harness; replayer_test.go holds the tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
	"github.com/auditstream/auditstream/internal/writer"
)

// shared is what every test uses: the binary, one broker, one PostgreSQL
// with the schema, the producer the in-process writers dead-letter through,
// and the test's own Kafka clients.
var shared struct {
	bin      string
	kafka    *testenv.Kafka
	pg       *testenv.Postgres
	db       *store.Store
	producer *kafka.Producer
	kcl      *kgo.Client
	adm      *kadm.Client
}

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "dlq-replayer tests", testmain.Both, func(ctx context.Context, e *testmain.Shared) error {
		shared.kafka, shared.pg = e.Kafka, e.Postgres
		var err error
		if shared.bin, err = e.Build(ctx, "dlq-replayer"); err != nil {
			return err
		}
		if _, err = store.Migrate(ctx, shared.pg.URL(), zap.NewNop()); err != nil {
			return err
		}
		if shared.db, err = store.Open(ctx, store.Config{URL: shared.pg.URL(), MaxConns: 4}); err != nil {
			return err
		}
		e.Cleanup(shared.db.Close)
		if shared.producer, err = kafka.NewProducer(kafkaClientConfig(), nil, zap.NewNop(), prometheus.NewRegistry()); err != nil {
			return err
		}
		if err = shared.producer.Connect(ctx); err != nil {
			return err
		}
		e.Cleanup(func() { _ = shared.producer.Close() })
		if shared.kcl, err = kgo.NewClient(kgo.SeedBrokers(shared.kafka.Brokers()...), kgo.ProducerLinger(0)); err != nil {
			return err
		}
		e.Cleanup(shared.kcl.Close)
		shared.adm = kadm.NewClient(shared.kcl)
		return nil
	}))
}

func kafkaClientConfig() kafka.Config {
	return kafka.Config{Brokers: shared.kafka.Brokers(), Version: "3.6.0", ClientID: "dlq-replayer-test", PublishTimeout: 10 * time.Second}
}

var envSeq atomic.Int64

// env is one test's topics, groups and tag (the event_type of its events,
// by which it counts its rows).
type env struct {
	events, notifications, dlq, parked string
	group                              string // the replayer's
	tag                                string
}

// newEnv creates the test's topics: dlqPartitions partitions for the DLQ
// and the parked topic, 3 for the original topics.
func newEnv(t *testing.T, dlqPartitions int32) env {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", "#", "-").Replace(t.Name()))
	base := fmt.Sprintf("%s-%d", name, envSeq.Add(1))
	e := env{
		events:        base + ".events",
		notifications: base + ".notifications",
		dlq:           base + ".dlq",
		parked:        base + ".dlq.parked",
		group:         base + ".replayer",
		tag:           base,
	}
	require.NoError(t, shared.kafka.CreateTopics(t.Context(), map[string]int32{
		e.events: 3, e.notifications: 3, e.dlq: dlqPartitions, e.parked: dlqPartitions,
	}))
	return e
}

// globalArgs are the flags every command of e needs.
func (e env) globalArgs() []string {
	return []string{
		"--kafka-brokers", strings.Join(shared.kafka.Brokers(), ","),
		"--events-topic", e.events, "--notifications-topic", e.notifications,
		"--dlq-topic", e.dlq, "--parked-topic", e.parked,
		"--consumer-group", e.group, "--topic-partitions", "3",
	}
}

// cfg parses a command line the way main does, with e's global flags.
func (e env) cfg(t *testing.T, args ...string) config.Replayer {
	t.Helper()
	var cfg config.Replayer
	parser, err := kong.New(&cfg, kong.Name("dlq-replayer"), kong.Exit(func(int) { t.Fatalf("kong exited on %q", args) }))
	require.NoError(t, err)
	_, err = parser.Parse(append(append([]string(nil), args...), e.globalArgs()...))
	require.NoError(t, err, "parse %q", args)
	return cfg
}

// replay runs `dlq-replayer replay args...` in-process and returns stdout.
func (e env) replay(t *testing.T, args ...string) string {
	t.Helper()
	var out, progress bytes.Buffer
	err := runReplay(t.Context(), e.cfg(t, append([]string{"replay"}, args...)...), zap.NewNop(), &out, &progress)
	require.NoError(t, err, "replay %q: %s", args, out.String())
	return out.String()
}

// list runs `dlq-replayer list --json args...` in-process.
func (e env) list(t *testing.T, args ...string) []recordJSON {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, runList(t.Context(), e.cfg(t, append([]string{"list", "--json"}, args...)...), &out))
	var recs []recordJSON
	dec := json.NewDecoder(&out)
	for dec.More() {
		var r recordJSON
		require.NoError(t, dec.Decode(&r))
		recs = append(recs, r)
	}
	return recs
}

// letter is the dead-letter envelope the tests put on records they place
// in a DLQ themselves, as the writer would.
func letterHeaders(l dlq.Letter, other ...kgo.RecordHeader) []kgo.RecordHeader {
	orig := make([]kafka.Header, len(other))
	for i, h := range other {
		orig[i] = kafka.Header{Key: []byte(h.Key), Value: h.Value}
	}
	var out []kgo.RecordHeader
	for _, h := range l.Headers(orig) {
		out = append(out, kgo.RecordHeader{Key: string(h.Key), Value: h.Value})
	}
	return out
}

// produce writes records synchronously and returns them with their offsets.
func produce(t *testing.T, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	for i := 0; i < len(recs); i += 1000 {
		res := shared.kcl.ProduceSync(t.Context(), recs[i:min(i+1000, len(recs))]...)
		require.NoError(t, res.FirstErr())
	}
	return recs
}

// eventValue is a valid audit event of tag; seq makes it unique.
func eventValue(tag, correlation string, seq int) []byte {
	return fmt.Appendf(nil, `{"version":"1.0","event_type":%q,"event_timestamp":%q,"event_category":"gateway",`+
		`"event_action":"write","event_outcome":"success","correlation_id":%q,"event_data":{"seq":%d}}`,
		tag, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano), correlation, seq)
}

// ends returns the high-water marks of topic, by partition.
func ends(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	res, err := shared.adm.ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	out := map[int32]int64{}
	res.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		out[o.Partition] = o.Offset
	})
	return out
}

func total(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// committed returns group's committed offsets in topic, by partition.
func committed(t *testing.T, group, topic string) map[int32]int64 {
	t.Helper()
	res, err := shared.adm.FetchOffsets(t.Context(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
	require.NoError(t, err)
	out := map[int32]int64{}
	res.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// readAll reads every record of topic from the start.
func readAll(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	n := int(total(ends(t, topic)))
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	recs, err := testenv.ConsumeAll(ctx, shared.kafka.Brokers(), topic, n)
	require.NoError(t, err)
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Partition != recs[j].Partition {
			return recs[i].Partition < recs[j].Partition
		}
		return recs[i].Offset < recs[j].Offset
	})
	return recs
}

// waiting reads the records of topic that group has not committed: what
// the replayer would handle next.
func waiting(t *testing.T, group, topic string) []*kgo.Record {
	t.Helper()
	c := committed(t, group, topic)
	var out []*kgo.Record
	for _, r := range readAll(t, topic) {
		if r.Offset >= c[r.Partition] {
			out = append(out, r)
		}
	}
	return out
}

func header(r *kgo.Record, key string) (string, int) {
	var v string
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			v, n = string(h.Value), n+1
		}
	}
	return v, n
}

func attempts(t *testing.T, r *kgo.Record) int {
	t.Helper()
	v, n := header(r, dlq.HeaderAttempts)
	require.Equal(t, 1, n, "one %s header", dlq.HeaderAttempts)
	a, err := strconv.Atoi(v)
	require.NoError(t, err)
	return a
}

// runWriter runs the real writer on e's topics, in-process, until the test
// ends.
func runWriter(t *testing.T, e env) {
	t.Helper()
	w, err := writer.New(writer.Config{
		Group:              e.tag + ".writer",
		EventsTopic:        e.events,
		NotificationsTopic: e.notifications,
		DLQTopic:           e.dlq,
		BatchSize:          1000,
		BatchAge:           20 * time.Millisecond,
		MaxBackoff:         time.Second,
		WriteTimeout:       10 * time.Second,
		Rules:              audit.DefaultRules(),
	}, kafkaClientConfig(), shared.db, kafka.NewPublisher(shared.producer), zap.NewNop(), writer.NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// stored counts the rows of e's events, and the distinct event ids among them.
func stored(t *testing.T, e env, where string, args ...any) (rows, ids int) {
	t.Helper()
	q := `SELECT count(*), count(DISTINCT event_id) FROM audit_events WHERE event_type = $1`
	if where != "" {
		q += " AND " + where
	}
	require.NoError(t, shared.db.Pool().QueryRow(t.Context(), q, append([]any{e.tag}, args...)...).Scan(&rows, &ids))
	return rows, ids
}

// proc is one dlq-replayer process.
type proc struct {
	cmd    *exec.Cmd
	out    *testenv.Output
	exited chan struct{}
	err    error
}

// start runs the binary with args and env (on top of a clean environment).
func start(t *testing.T, environ []string, args ...string) *proc {
	t.Helper()
	p := &proc{out: &testenv.Output{}, exited: make(chan struct{})}
	p.cmd = exec.Command(shared.bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LOG_FORMAT=console"}, environ...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("dlq-replayer %q output:\n%s", args, p.out.Tail(4000))
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// wait returns the exit code, failing the test after d.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		require.FailNow(t, "dlq-replayer did not exit", "after %s; output:\n%s", d, p.out.Tail(4000))
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, p.err, &ee)
	return ee.ExitCode()
}

// exec runs the binary to the end and returns its exit code and output.
func execBin(t *testing.T, environ []string, d time.Duration, args ...string) (int, string) {
	t.Helper()
	p := start(t, environ, args...)
	code := p.wait(t, d)
	return code, p.out.String()
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// endsTotal is total(ends(topic)) for goroutines, which must not fail the test.
func endsTotal(ctx context.Context, topic string) (int64, error) {
	res, err := shared.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	res.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, res.Error()
}
