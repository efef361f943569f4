package kafka

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/testenv"
)

func TestPublishCountsPerTopicAndFailsWhenKafkaIsGone(t *testing.T) {
	k := testenv.NewKafka(t, map[string]int32{"a": 2, "b": 1})
	reg := prometheus.NewRegistry()
	p, err := NewProducer(Config{Brokers: k.Brokers(), Version: "3.6.0", ClientID: "t", PublishTimeout: 3 * time.Second},
		[]Topic{{Name: "a", Partitions: 2, ReplicationFactor: -1}}, zap.NewNop(), reg)
	require.NoError(t, err)

	// Not connected yet: nothing is sent, every record is reported failed.
	err = p.Publish(t.Context(), []Record{{Topic: "a", Value: []byte("x")}})
	require.ErrorIs(t, err, ErrUnavailable)
	require.True(t, Retriable(err), "not connected yet: the same record may go later")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Connect(ctx))
	t.Cleanup(func() { _ = p.Close() })
	require.NoError(t, p.Publish(t.Context(), []Record{
		{Topic: "a", Key: []byte("k"), Value: []byte("1")},
		{Topic: "a", Key: []byte("k"), Value: []byte("2")},
		{Topic: "b", Value: []byte("3")},
	}))
	require.Equal(t, 2.0, value(p.records.WithLabelValues("a", "acked")))
	require.Equal(t, 1.0, value(p.records.WithLabelValues("b", "acked")))
	require.Equal(t, 1.0, value(p.records.WithLabelValues("a", "failed")))
	require.NoError(t, p.Check(t.Context()))

	// A record larger than any broker takes is refused for what it is.
	err = p.Publish(t.Context(), []Record{{Topic: "a", Value: make([]byte, 3<<20)}})
	require.ErrorIs(t, err, ErrUnavailable)
	require.False(t, Retriable(err), "%v", err)
	var tooLarge *PublishError
	require.True(t, errors.As(err, &tooLarge) && tooLarge.TooLarge, "%v", err)

	// Records that each fit the broker's max.message.bytes (kfake keeps
	// Kafka's default, 1048588) but not together go in batches the broker
	// takes: with a 2 MiB batch limit, signed checkpoints of a few hundred
	// KiB to one partition were refused together.
	// Random bytes: lz4 must not shrink them under the limit.
	big := make([]Record, 5)
	for i := range big {
		big[i] = Record{Topic: "b", Value: make([]byte, 400<<10)}
		_, _ = rand.Read(big[i].Value)
	}
	require.NoError(t, p.Publish(t.Context(), big))
	require.Equal(t, 6.0, value(p.records.WithLabelValues("b", "acked")))

	// The broker goes away: the publish fails within the timeout, as a
	// PublishError that says how much failed.
	require.NoError(t, k.Close())
	start := time.Now()
	err = p.Publish(t.Context(), []Record{{Topic: "a", Value: []byte("4")}, {Topic: "b", Value: []byte("5")}})
	var perr *PublishError
	require.True(t, errors.As(err, &perr), "%v", err)
	require.ErrorIs(t, err, ErrUnavailable)
	require.Equal(t, 2, perr.Failed)
	require.True(t, Retriable(err), "%v", err)
	require.Less(t, time.Since(start), 3*time.Second+time.Second, "bounded by the publish timeout")
	require.Equal(t, 3.0, value(p.records.WithLabelValues("a", "failed")))
	require.Equal(t, 1.0, value(p.records.WithLabelValues("b", "failed")))
	require.Error(t, p.Check(t.Context()))
	require.False(t, perr.TooLarge, "%v", err)
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func TestRetriable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"no acknowledgement in time", &PublishError{Total: 1, Failed: 1, Uncertain: true, Err: errors.New("timeout")}, true},
		{"broker gone", fmt.Errorf("publish: %w", &PublishError{Total: 2, Failed: 2, Err: sarama.ErrOutOfBrokers}), true},
		{"refused", &PublishError{Total: 1, Failed: 1, Refused: true, Err: sarama.ErrMessageSizeTooLarge}, false},
		{"not a publish error", errors.New("metadata has no place in a Kafka record"), false},
		{"nil", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) { require.Equal(t, c.want, Retriable(c.err)) })
	}
}
