package main

// Process tests of the hardening of issue 18: what the writer does with a
// row it cannot encode, a reused event_id, a broker reset, and a group it
// cannot join.

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestUnencodableRowIsIsolated: a row that pgx refuses to encode (injected
// by the faultinject build) is found by splitting its batch and
// dead-lettered as poison with the encoder's reason; the rest of the batch
// is stored and the writer never takes it for a database outage.
func TestUnencodableRowIsIsolated(t *testing.T) {
	p := newPipeline(t)
	w := startWriterBin(t, shared.faultBin, p, "unencodable")
	w.awaitReady(30 * time.Second)

	recs := make([]*kgo.Record, 0, 10)
	for i := range 9 {
		recs = append(recs, eventRecord(p.tag, i, uuid.New()))
	}
	recs = append(recs, eventRecord(store.FaultUnencodable, 9, uuid.New()))
	produce(t, p, recs...)

	dead := deadLetters(t, p, 1)
	require.Equal(t, "poison", header(dead[0], "dlq-error-class"))
	require.Contains(t, header(dead[0], "dlq-error"), "cannot be encoded for column duration_ms")
	require.Contains(t, string(dead[0].Value), store.FaultUnencodable)
	awaitCaughtUp(t, p, 9)
	require.Zero(t, w.metric("auditstream_writer_outages_total"), "an unencodable row taken for a database outage")
}

// TestReusedEventIDWithOtherContent: a record that reuses a stored
// event_id with other content is dead-lettered as a conflict naming the id
// and both digests, across batches and inside one; a true redelivery stays
// a silent duplicate; a row stored before content digests existed takes a
// repeat of its id as an unverified duplicate. Nothing different is
// dropped unseen.
func TestReusedEventIDWithOtherContent(t *testing.T) {
	p := newPipeline(t)
	w := startWriter(t, p, "conflicts")
	w.awaitReady(30 * time.Second)

	x := uuid.New()
	first := eventRecord(p.tag, 1, x)
	produce(t, p, first)
	awaitCaughtUp(t, p, 1)

	// Across batches: the same id with other content, then the first
	// record again (a redelivery).
	produce(t, p, eventRecord(p.tag, 2, x))
	dead := deadLetters(t, p, 1)
	require.Equal(t, "conflict", header(dead[0], "dlq-error-class"))
	require.Contains(t, header(dead[0], "dlq-error"), "event_id "+x.String()+" is stored with other content")
	produce(t, p, &kgo.Record{Key: first.Key, Value: first.Value, Headers: first.Headers})
	testenv.Await(t, catchUpTimeout, "the redelivery counted as a duplicate", func() (bool, string) {
		n := w.metric(duplicatesMetric)
		return n == 1, fmt.Sprintf("%v duplicates", n)
	})

	// Inside one batch: one key, so one partition, in order.
	y := uuid.New()
	c, d := eventRecord(p.tag, 3, y), eventRecord(p.tag, 4, y)
	d.Key = c.Key
	produce(t, p, c, d)

	// A row registered before migration 000003, without a digest.
	old := uuid.New()
	_, err := shared.db.Exec(t.Context(), `INSERT INTO audit_event_ids (event_id, event_timestamp) VALUES ($1, now())`, old)
	require.NoError(t, err)
	produce(t, p, eventRecord(p.tag, 5, old))

	awaitCaughtUp(t, p, 2)
	testenv.Await(t, catchUpTimeout, "the unverified duplicate counted", func() (bool, string) {
		n := w.metric("auditstream_writer_unverified_duplicates_total")
		return n == 1, fmt.Sprintf("%v unverified duplicates", n)
	})
	dead = deadLetters(t, p, 2)
	require.Equal(t, "conflict", header(dead[1], "dlq-error-class"))
	require.Contains(t, header(dead[1], "dlq-error"), "event_id "+y.String()+" was just stored from an earlier record of the same batch")
	require.Equal(t, string(d.Value), string(dead[1].Value), "the later record is the conflict")
	require.Equal(t, int64(2), dlqDepth(t, p), "exactly the two conflicts were dead-lettered")
	require.Equal(t, 2.0, w.metric(duplicatesMetric))
}

// dlqDepth is the number of records in the pipeline's DLQ.
func dlqDepth(t *testing.T, p pipeline) int64 {
	t.Helper()
	ends, err := shared.adm.ListEndOffsets(t.Context(), p.dlq)
	require.NoError(t, err)
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		n += o.Offset
	})
	return n
}

// TestBrokerResetStoresNewRecords: records produced without event_id get
// an id that tells a redelivery (the same record read again: the same id,
// a duplicate) from a new record at a reused offset. After the cluster is
// rebuilt empty (a fresh broker on the same address, creating topics on
// first use with 10 partitions), the writer creates its topics again with
// TOPIC_PARTITIONS, and five records at offsets 0..4 of the new topic, with
// the keys, values and timestamps of five stored ones, are five new rows.
func TestBrokerResetStoresNewRecords(t *testing.T) {
	k := testenv.NewKafka(t, nil)
	p := newPipelineOn(t, k)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.ProducerLinger(0))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	env := []string{"KAFKA_BROKERS=" + strings.Join(k.Brokers(), ","), "TOPIC_CHECK_INTERVAL=500ms", "MAX_BACKOFF=1s"}
	w := startWriter(t, p, "reset-1", env...)
	w.awaitReady(30 * time.Second)

	first := make([]*kgo.Record, 5)
	for i := range first {
		first[i] = eventRecord(p.tag, i, uuid.Nil)
		first[i].Topic, first[i].Key = p.events, []byte("reset")
	}
	require.NoError(t, cl.ProduceSync(t.Context(), first...).FirstErr())
	part := first[0].Partition
	for i, r := range first {
		require.Equal(t, [2]int64{int64(part), int64(i)}, [2]int64{int64(r.Partition), r.Offset}, "one partition, from offset 0")
	}
	awaitStored(t, p, 5)

	// A redelivery: the group rewound to 0 reads the same records again.
	w.signal(syscall.SIGTERM)
	require.Zero(t, w.WaitExit(t, gracePeriod), "writer exits 0 on SIGTERM")
	rewind, err := adm.CommitOffsets(t.Context(), p.group, kadm.Offsets{p.events: {part: {Topic: p.events, Partition: part, At: 0, LeaderEpoch: -1}}})
	require.NoError(t, err)
	require.NoError(t, rewind.Error())
	w = startWriter(t, p, "reset-2", env...)
	testenv.Await(t, catchUpTimeout, "the redelivered records counted as duplicates", func() (bool, string) {
		code, body, err := w.get("/metrics")
		if err != nil || code != 200 || !strings.Contains(body, duplicatesMetric+"{") {
			return false, fmt.Sprintf("metrics: %d %v", code, err)
		}
		n := w.metric(duplicatesMetric)
		return n == 5, fmt.Sprintf("%v duplicates", n)
	})
	require.Equal(t, 5, storedCount(t, p))

	require.NoError(t, k.Reset(kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(10)))
	testenv.Await(t, catchUpTimeout, "the writer to create its topics again", func() (bool, string) {
		details, err := k.Topics(t.Context(), p.events, p.notifications, p.dlq, p.parked)
		if err != nil {
			return false, err.Error()
		}
		var status []string
		done := true
		for _, name := range []string{p.events, p.notifications, p.dlq, p.parked} {
			d, ok := details[name]
			if !ok || d.Err != nil {
				done = false
				status = append(status, name+" missing")
				continue
			}
			status = append(status, fmt.Sprintf("%s: %d partitions", name, len(d.Partitions)))
			done = done && len(d.Partitions) == partitions
		}
		return done, strings.Join(status, ", ")
	})

	again := make([]*kgo.Record, len(first))
	for i, r := range first {
		again[i] = &kgo.Record{Topic: p.events, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
	}
	// A producer of the new cluster (this client would keep the old topic
	// ids).
	cl2, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.ProducerLinger(0))
	require.NoError(t, err)
	t.Cleanup(cl2.Close)
	require.NoError(t, cl2.ProduceSync(t.Context(), again...).FirstErr())
	for i, r := range again {
		require.Equal(t, int64(i), r.Offset, "the offsets start again at 0")
	}
	awaitStored(t, p, 10)
	ends, err := kadm.NewClient(cl2).ListEndOffsets(t.Context(), p.dlq)
	require.NoError(t, err)
	ends.Each(func(o kadm.ListedOffset) { require.Zero(t, o.Offset, "nothing dead-lettered") })
}

// TestStalledWriterReportsUnhealthy: a writer that cannot get a consumer
// group session (here another member holds the group with a balancer the
// writer does not speak, so every join is refused) reports /health 503
// once GROUP_STALL_TIMEOUT has passed with records waiting, and exports the
// committed offset and high-water mark of every partition, although it
// owns none. When the group lets it in, it catches up and is healthy.
func TestStalledWriterReportsUnhealthy(t *testing.T) {
	p := newPipeline(t)
	squatter, err := kgo.NewClient(kgo.SeedBrokers(shared.kafka.Brokers()...), kgo.ConsumerGroup(p.group),
		kgo.ConsumeTopics(p.events, p.notifications), kgo.Balancers(kgo.RoundRobinBalancer()), kgo.DisableAutoCommit())
	require.NoError(t, err)
	closeSquatter := sync.OnceFunc(squatter.Close)
	t.Cleanup(closeSquatter)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		// Polling joins the group; it ends when the client closes.
		for !squatter.PollFetches(context.Background()).IsClientClosed() {
		}
	}()
	testenv.Await(t, 30*time.Second, "the other member to hold the group", func() (bool, string) {
		state, owned, err := assignment(t, p)
		return err == nil && state == "Stable" && len(owned) == 1, fmt.Sprintf("%s %v %v", state, owned, err)
	})

	for i := range 10 {
		produce(t, p, eventRecord(p.tag, i, uuid.Nil))
	}
	w := startWriter(t, p, "stalled", "GROUP_STALL_TIMEOUT=3s", "GROUP_POLL_INTERVAL=200ms")
	w.awaitReady(30 * time.Second)
	testenv.Await(t, 30*time.Second, "/health unhealthy", func() (bool, string) {
		code, body, err := w.get("/health")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, `"writer":"down"`),
			fmt.Sprintf("%d %s %v", code, body, err)
	})
	// The open /health names the component only; the reason is logged.
	reason := regexp.MustCompile(`"msg":"dependency check failing","component":"writer","error":"no consumer group session of \S+ for \d+s while 10 records wait`)
	testenv.Await(t, 10*time.Second, "the reason logged", func() (bool, string) {
		return reason.MatchString(w.Stderr.String()), "not logged"
	})
	_, body, err := w.get("/metrics")
	require.NoError(t, err)
	for i := range partitions {
		for _, topic := range []string{p.events, p.notifications} {
			require.Contains(t, body, fmt.Sprintf("auditstream_writer_partition_committed_offset{partition=\"%d\",topic=\"%s\"} 0", i, topic))
			require.Contains(t, body, fmt.Sprintf("auditstream_writer_partition_high_watermark{partition=\"%d\",topic=\"%s\"}", i, topic))
		}
	}
	require.Equal(t, 10.0, w.metric("auditstream_writer_partition_high_watermark")-w.metric("auditstream_writer_partition_committed_offset"),
		"the waiting records, in partitions the writer does not own")
	require.Zero(t, w.metric("auditstream_writer_group_session"))
	testenv.Await(t, 10*time.Second, "the stall logged", func() (bool, string) {
		return strings.Contains(w.Stderr.String(), `"msg":"writer stalled"`), "not logged"
	})

	closeSquatter()
	<-polled
	awaitCaughtUp(t, p, 10)
	testenv.Await(t, 30*time.Second, "/health healthy again", func() (bool, string) {
		code, body, err := w.get("/health")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})
	require.Equal(t, 1.0, w.metric("auditstream_writer_group_session"))
}

// awaitStored waits until the pipeline has want rows.
func awaitStored(t *testing.T, p pipeline, want int) {
	t.Helper()
	testenv.Await(t, catchUpTimeout, fmt.Sprintf("%d rows stored", want), func() (bool, string) {
		n := storedCount(t, p)
		return n == want, fmt.Sprintf("%d rows stored", n)
	})
}

// deadLetters waits for n records in the pipeline's DLQ and returns them.
func deadLetters(t *testing.T, p pipeline, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), catchUpTimeout)
	defer cancel()
	recs, err := testenv.ConsumeAll(ctx, shared.kafka.Brokers(), p.dlq, n)
	require.NoError(t, err, "%d dead letters in %s", n, p.dlq)
	return recs
}

// header returns the value of the record's header key ("" if absent).
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
