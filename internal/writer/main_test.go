package writer_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/provenance"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
	"github.com/auditstream/auditstream/internal/testenv/testmain"
	"github.com/auditstream/auditstream/internal/writer"
)

// env is what every test of the package shares: one embedded broker, one
// migrated PostgreSQL, and clients to produce, inspect and query them.
// Each test takes topics and a consumer group of its own (newTopics), and
// tells its rows apart by a correlation / notification id prefix.
var env struct {
	kafka *testenv.Kafka
	pg    *testenv.Postgres
	db    *store.Store
	kcl   *kgo.Client
	admin *kadm.Client
}

func TestMain(m *testing.M) {
	os.Exit(testmain.Main(m, "writer tests", testmain.Both, func(ctx context.Context, e *testmain.Shared) error {
		env.kafka, env.pg = e.Kafka, e.Postgres
		var err error
		if _, err = store.Migrate(ctx, env.pg.URL(), zap.NewNop()); err != nil {
			return err
		}
		if env.db, err = store.Open(ctx, store.Config{URL: env.pg.URL(), MaxConns: 4}); err != nil {
			return err
		}
		e.Cleanup(env.db.Close)
		if env.kcl, err = kgo.NewClient(kgo.SeedBrokers(env.kafka.Brokers()...), kgo.ProducerLinger(0)); err != nil {
			return err
		}
		e.Cleanup(env.kcl.Close)
		env.admin = kadm.NewClient(env.kcl)
		return nil
	}))
}

var seq atomic.Int64

// topics are the topic names and consumer group of one test.
type topics struct {
	events, notifications, dlq, group string
}

func newTopics(t *testing.T) topics {
	t.Helper()
	n := seq.Add(1)
	tp := topics{
		events:        fmt.Sprintf("writer-test-%d.events", n),
		notifications: fmt.Sprintf("writer-test-%d.notifications", n),
		dlq:           fmt.Sprintf("writer-test-%d.dlq", n),
		group:         fmt.Sprintf("writer-test-%d", n),
	}
	require.NoError(t, env.kafka.CreateTopics(t.Context(), map[string]int32{
		tp.events: 3, tp.notifications: 2, tp.dlq: 1,
	}))
	return tp
}

// prefix returns a string unique to this test run, for correlation and
// notification ids.
func prefix(t *testing.T) string {
	return fmt.Sprintf("%s-%d-", t.Name(), seq.Add(1))
}

type rigOptions struct {
	batchSize int
	batchAge  time.Duration
	// flushLanes: 0 is the writer's default.
	flushLanes int
	maxBackoff time.Duration
	dbURL      string
	brokers    []string // default: the shared broker
	// submitters verify the principal headers; nil verifies none.
	submitters *provenance.Keys
}

// rig is one writer running in-process (writer.New(...).Run in a
// goroutine) with a metrics registry of its own.
type rig struct {
	t      *testing.T
	tp     topics
	w      *writer.Writer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	st     *store.Store
}

func startWriter(t *testing.T, tp topics, opt rigOptions) *rig {
	t.Helper()
	if opt.batchSize == 0 {
		opt.batchSize = 500
	}
	if opt.batchAge == 0 {
		opt.batchAge = 50 * time.Millisecond
	}
	if opt.maxBackoff == 0 {
		opt.maxBackoff = time.Second
	}
	if opt.dbURL == "" {
		opt.dbURL = env.pg.URL()
	}
	if opt.brokers == nil {
		opt.brokers = env.kafka.Brokers()
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	st, err := store.Open(t.Context(), store.Config{URL: opt.dbURL, MaxConns: 4, ConnectTimeout: 2 * time.Second, Log: log.Named("store")})
	require.NoError(t, err)
	kcfg := kafka.Config{Brokers: opt.brokers, Version: "3.6.0", ClientID: "writer-test", PublishTimeout: 5 * time.Second}
	reg := prometheus.NewRegistry()
	producer, err := kafka.NewProducer(kcfg, []kafka.Topic{{Name: tp.dlq, Partitions: 1, ReplicationFactor: -1}}, log.Named("kafka"), reg)
	require.NoError(t, err)
	require.NoError(t, producer.Connect(t.Context()))
	w, err := writer.New(writer.Config{
		Group:              tp.group,
		EventsTopic:        tp.events,
		NotificationsTopic: tp.notifications,
		DLQTopic:           tp.dlq,
		BatchSize:          opt.batchSize,
		BatchAge:           opt.batchAge,
		FlushLanes:         opt.flushLanes,
		MaxBackoff:         opt.maxBackoff,
		WriteTimeout:       5 * time.Second,
		Rules:              audit.DefaultRules(),
		Submitters:         opt.submitters,
	}, kcfg, st, kafka.NewPublisher(producer), log.Named("writer"), writer.NewMetrics(reg))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, tp: tp, w: w, reg: reg, cancel: cancel, done: make(chan error, 1), st: st}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		require.NoError(t, r.stop())
		require.NoError(t, producer.Close())
		st.Close()
	})
	return r
}

// stop cancels Run and waits for it to return (the last flush included).
func (r *rig) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		return errors.New("writer did not stop within 30s")
	}
}

// metric returns the value of a counter or gauge series of the writer's
// registry; labels are name/value pairs. A series not yet created is 0.
func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	v, _ := metricValue(r.t, r.reg, name, labels...)
	return v
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// eventually polls cond every 25 ms until it holds, failing the test with
// what after timeout. Arguments of type func() int are called then, so the
// message shows the last state, not the first.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for i, a := range args {
				if f, ok := a.(func() int); ok {
					args[i] = f()
				}
			}
			require.FailNowf(t, "timed out", "after %s: "+what, append([]any{timeout}, args...)...)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// count runs a count(*) query on the shared database.
func count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, env.db.Pool().QueryRow(t.Context(), sql, args...).Scan(&n))
	return n
}

func countEvents(t *testing.T, corrPrefix string) int {
	t.Helper()
	return count(t, `SELECT count(*) FROM audit_events WHERE correlation_id LIKE $1 || '%'`, corrPrefix)
}

func countNotifications(t *testing.T, idPrefix string) int {
	t.Helper()
	return count(t, `SELECT count(*) FROM notification_audit WHERE notification_id LIKE $1 || '%'`, idPrefix)
}

// produce sends records and returns them, in the order given, with their
// partition and offset set (ProduceSync's results come in completion order).
func produce(t *testing.T, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	require.NoError(t, env.kcl.ProduceSync(t.Context(), recs...).FirstErr())
	return recs
}

// endOffsets sums the end offsets of a topic's partitions: the number of
// records it holds.
func endOffsets(t *testing.T, topic string) int64 {
	t.Helper()
	return endOffsetsOn(t, env.admin, topic)
}

func endOffsetsOn(t *testing.T, admin *kadm.Client, topic string) int64 {
	t.Helper()
	listed, err := admin.ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	require.NoError(t, listed.Error())
	var n int64
	listed.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// consumeAll reads the first n records of topic.
func consumeAll(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	return consumeAllOn(t, env.kafka.Brokers(), topic, n)
}

func consumeAllOn(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	recs, err := testenv.ConsumeAll(ctx, brokers, topic, n)
	require.NoError(t, err)
	return recs
}

func ptr[T any](v T) *T { return &v }

// fullEvent is a valid event with every field set.
func fullEvent(corr string) audit.Event {
	return audit.Event{
		EventID:        uuid.New(),
		Version:        "1.0",
		EventType:      "writer.test",
		EventTimestamp: time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond),
		EventCategory:  "workflow",
		EventAction:    "start",
		EventOutcome:   "pending",
		CorrelationID:  corr,
		ActorType:      ptr("service"),
		ActorID:        ptr("scheduler"),
		ResourceType:   ptr("job"),
		ResourceID:     ptr("job-7"),
		ParentEventID:  ptr(uuid.New()),
		Namespace:      ptr("prod"),
		ClusterName:    ptr("eu-1"),
		Severity:       ptr("warning"),
		DurationMS:     ptr(int64(1500)),
		ActorIP:        netip.MustParseAddr("192.0.2.44"),
		ClusterID:      ptr("cluster-uid-9"),
		ErrorCode:      ptr("E_QUOTA"),
		ErrorMessage:   ptr("quota exceeded"),
		IsSensitive:    true,
		RetentionDays:  ptr(int32(400)),
		EventData:      []byte(`{"nested":{"k":[1,2.5,"ü"]},"flag":true}`),
	}
}

// minimalEvent is a valid event with only the required fields and no
// event_id.
func minimalEvent(corr string) audit.Event {
	return audit.Event{
		Version:        "1",
		EventType:      "writer.min",
		EventTimestamp: time.Now().UTC().Truncate(time.Microsecond),
		EventCategory:  "gateway",
		EventAction:    "call",
		EventOutcome:   "success",
		CorrelationID:  corr,
		EventData:      []byte(`{}`),
	}
}

func eventRecord(topic string, e audit.Event) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(e.CorrelationID), Value: e.AppendJSON(nil),
		Headers: []kgo.RecordHeader{{Key: kafka.HeaderContentType, Value: []byte("application/json")}}}
}

func notificationRecord(topic string, n audit.Notification) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(n.NotificationID), Value: n.AppendJSON(nil)}
}

const selectEventSQL = `SELECT event_id, version, event_type, event_timestamp, event_category, event_action,
	event_outcome, correlation_id, actor_type, actor_id, resource_type, resource_id, parent_event_id,
	namespace, cluster_name, severity, duration_ms, event_data, event_date::text,
	host(actor_ip), cluster_id, error_code, error_message, is_sensitive, retention_days
	FROM audit_events WHERE event_id = $1`

// loadEvent reads a stored event back, with its event_date.
func loadEvent(t *testing.T, id uuid.UUID) (audit.Event, string) {
	t.Helper()
	var e audit.Event
	var data []byte
	var date string
	var ip *string
	require.NoError(t, env.db.Pool().QueryRow(t.Context(), selectEventSQL, id).Scan(
		&e.EventID, &e.Version, &e.EventType, &e.EventTimestamp, &e.EventCategory, &e.EventAction,
		&e.EventOutcome, &e.CorrelationID, &e.ActorType, &e.ActorID, &e.ResourceType, &e.ResourceID,
		&e.ParentEventID, &e.Namespace, &e.ClusterName, &e.Severity, &e.DurationMS, &data, &date,
		&ip, &e.ClusterID, &e.ErrorCode, &e.ErrorMessage, &e.IsSensitive, &e.RetentionDays))
	if ip != nil {
		e.ActorIP = netip.MustParseAddr(*ip)
	}
	e.EventTimestamp = e.EventTimestamp.UTC()
	e.EventData = data
	return e, date
}

func requireStoredEvent(t *testing.T, want audit.Event) {
	t.Helper()
	got, date := loadEvent(t, want.EventID)
	require.Equal(t, want.EventTimestamp.Format(time.DateOnly), date)
	// jsonb keeps the value, not the spelling (key order, spacing).
	require.JSONEq(t, string(want.EventData), string(got.EventData))
	want.EventData, got.EventData = nil, nil
	require.Equal(t, want, got)
}

func loadNotification(t *testing.T, notificationID string) audit.Notification {
	t.Helper()
	var n audit.Notification
	require.NoError(t, env.db.Pool().QueryRow(t.Context(), `SELECT id, remediation_id, notification_id, recipient, channel,
		message_summary, status, sent_at, delivery_status, error_message, escalation_level, created_at, updated_at
		FROM notification_audit WHERE notification_id = $1`, notificationID).Scan(
		&n.ID, &n.RemediationID, &n.NotificationID, &n.Recipient, &n.Channel, &n.MessageSummary, &n.Status,
		&n.SentAt, &n.DeliveryStatus, &n.ErrorMessage, &n.EscalationLevel, &n.CreatedAt, &n.UpdatedAt))
	n.SentAt, n.CreatedAt, n.UpdatedAt = n.SentAt.UTC(), n.CreatedAt.UTC(), n.UpdatedAt.UTC()
	return n
}

// header returns every value of a record header, in order.
func header(r *kgo.Record, key string) []string {
	var out []string
	for _, h := range r.Headers {
		if h.Key == key {
			out = append(out, string(h.Value))
		}
	}
	return out
}

func itoa[T int32 | int64 | int](v T) string { return strconv.FormatInt(int64(v), 10) }

// recordID is the event id the writer derives for rec, a record without
// event_id as the broker behind adm holds it (audit.DeterministicEventIDV2).
func recordID(t *testing.T, adm *kadm.Client, rec *kgo.Record) uuid.UUID {
	t.Helper()
	details, err := adm.ListTopics(t.Context(), rec.Topic)
	require.NoError(t, err)
	d := details[rec.Topic]
	require.NoError(t, d.Err, "topic id of %s", rec.Topic)
	return audit.DeterministicEventIDV2(audit.RecordOrigin{Topic: rec.Topic, TopicID: base64.RawURLEncoding.EncodeToString(d.ID[:]),
		Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp.UnixMilli(), Key: rec.Key, Value: rec.Value})
}
