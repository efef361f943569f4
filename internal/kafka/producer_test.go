package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

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

	// The broker goes away: the publish fails within the timeout, as a
	// PublishError that says how much failed.
	require.NoError(t, k.Close())
	start := time.Now()
	err = p.Publish(t.Context(), []Record{{Topic: "a", Value: []byte("4")}, {Topic: "b", Value: []byte("5")}})
	var perr *PublishError
	require.True(t, errors.As(err, &perr), "%v", err)
	require.ErrorIs(t, err, ErrUnavailable)
	require.Equal(t, 2, perr.Failed)
	require.Less(t, time.Since(start), 3*time.Second+time.Second, "bounded by the publish timeout")
	require.Equal(t, 2.0, value(p.records.WithLabelValues("a", "failed")))
	require.Equal(t, 1.0, value(p.records.WithLabelValues("b", "failed")))
	require.Error(t, p.Check(t.Context()))
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
