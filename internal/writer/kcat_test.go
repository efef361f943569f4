package writer_test

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kcatKafka starts an embedded broker of the test's own that advertises
// Produce from v0, as Apache Kafka before 4.0 does.
//
// Why: librdkafka up to 2.11 (Debian's kcat links 2.0.2) compresses with
// gzip, snappy or lz4 only if the broker's Produce version range includes
// v0 (rd_kafka_msgset_writer_select_MsgVersion asks for Produce in [0, 0]);
// otherwise it logs "Broker does not support compression type gzip: not
// compressing batch" at debug level and sends the batch uncompressed.
// kfake, like Kafka 4.0, starts Produce at v3, so against the shared broker
// only zstd would really be compressed and the test would prove nothing
// for the other codecs. librdkafka still produces with v3+ (message format
// v2): only the advertised minimum changes.
func kcatKafka(t *testing.T, topics map[string]int32) ([]string, *kadm.Client) {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(1)}
	for name, n := range topics {
		opts = append(opts, kfake.SeedTopics(n, name))
	}
	cluster, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()

	// kfake's own answer, with Produce's minimum lowered.
	probe, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	versions, err := kmsg.NewPtrApiVersionsRequest().RequestWith(t.Context(), probe)
	probe.Close()
	require.NoError(t, err)
	require.Zero(t, versions.ErrorCode)
	keys := slices.Clone(versions.ApiKeys)
	for i := range keys {
		if keys[i].ApiKey == int16(kmsg.Produce) {
			keys[i].MinVersion = 0
		}
	}
	cluster.ControlKey(int16(kmsg.ApiVersions), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if req.GetVersion() > versions.Version {
			return nil, nil, false // kfake answers with its downgrade
		}
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = slices.Clone(keys)
		resp.SupportedFeatures = versions.SupportedFeatures
		resp.FinalizedFeatures = versions.FinalizedFeatures
		resp.FinalizedFeaturesEpoch = versions.FinalizedFeaturesEpoch
		return resp, nil, true
	})

	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	t.Cleanup(kcl.Close)
	return brokers, kadm.NewClient(kcl)
}

// kcatProduce pipes "key|value" lines into `kcat -P`, the way a direct
// producer without our client library publishes. codec "" is uncompressed;
// extra are more kcat arguments (-H name=value puts a header on every
// record).
func kcatProduce(t *testing.T, brokers []string, topic, codec string, lines []string, extra ...string) {
	t.Helper()
	path, err := exec.LookPath("kcat")
	require.NoError(t, err, "kcat is required (Debian/Ubuntu: apt-get install kcat)")
	args := []string{"-P", "-b", strings.Join(brokers, ","), "-t", topic, "-K|",
		// Fail within seconds rather than retrying for minutes.
		"-X", "message.timeout.ms=10000"}
	if codec != "" {
		args = append(args, "-z", codec)
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), "kcat %s: %s", strings.Join(args, " "), out.String())
}

// TestDirectProducerKcat: records produced by kcat, uncompressed and with
// every codec, with and without event_id, are stored; producing the ones
// with event_id again adds no rows.
func TestDirectProducerKcat(t *testing.T) {
	t.Parallel()
	tp := topics{events: "audit.events", notifications: "audit.notifications", dlq: "audit.dlq", group: "auditstream-writer"}
	brokers, admin := kcatKafka(t, map[string]int32{tp.events: 3, tp.notifications: 1, tp.dlq: 1})
	r := startWriter(t, tp, rigOptions{brokers: brokers})
	p := prefix(t)

	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	var withID []string
	ids := map[string]uuid.UUID{}
	for _, codec := range codecs {
		var lines []string
		for i := range 4 {
			e := minimalEvent(p + codec + "-" + itoa(i))
			if i%2 == 0 {
				e = fullEvent(e.CorrelationID)
				ids[e.CorrelationID] = e.EventID
			}
			line := e.CorrelationID + "|" + string(e.AppendJSON(nil))
			require.Equal(t, 1, strings.Count(line, "|"), "the key delimiter appears once")
			lines = append(lines, line)
			if e.EventID != uuid.Nil {
				withID = append(withID, line)
			}
		}
		kcatProduce(t, brokers, tp.events, strings.TrimPrefix(codec, "none"), lines)
	}
	total := 4 * len(codecs)
	eventually(t, 20*time.Second, func() bool { return countEvents(t, p) == total }, "%d events stored; have %d", total, func() int { return countEvents(t, p) })

	// As the broker holds them: compressed with the codec asked for, and
	// those without event_id stored under the id of their coordinates.
	codecOf := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	for _, rec := range consumeAllOn(t, brokers, tp.events, total) {
		corr := string(rec.Key)
		codec, _, _ := strings.Cut(strings.TrimPrefix(corr, p), "-")
		require.Equal(t, codecOf[codec], rec.Attrs.CompressionType(), "codec of %s", corr)
		id, ok := ids[corr]
		if !ok {
			id = recordID(t, admin, rec)
		}
		require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND correlation_id = $2`, id, corr), corr)
	}

	// Again, the ones with event_id: duplicates, no rows.
	kcatProduce(t, brokers, tp.events, "gzip", withID)
	eventually(t, 20*time.Second, func() bool {
		return r.metric("auditstream_writer_duplicates_total", "table", "audit_events") == float64(len(withID))
	}, "%d duplicates counted", len(withID))
	require.Equal(t, total, countEvents(t, p))
	require.Zero(t, endOffsetsOn(t, admin, tp.dlq))
}
