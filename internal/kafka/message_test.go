package kafka

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
)

func TestMessageOfSharesBytesAndDropsNilHeaders(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	key, value, hv := []byte("k"), []byte(`{"a":1}`), []byte("application/json")
	m := messageOf(&sarama.ConsumerMessage{
		Topic: "t", Partition: 3, Offset: 42, Timestamp: at, Key: key, Value: value,
		Headers: []*sarama.RecordHeader{nil, {Key: []byte("content-type"), Value: hv}, {Key: []byte("empty"), Value: []byte{}}},
	})
	require.Equal(t, &Message{
		Topic: "t", Partition: 3, Offset: 42, Timestamp: at, Key: key, Value: value,
		Headers: []Header{{Key: []byte("content-type"), Value: hv}, {Key: []byte("empty"), Value: []byte{}}},
	}, m)
	require.Same(t, &value[0], &m.Value[0], "the value is not copied")
	require.Same(t, &hv[0], &m.Headers[0].Value[0], "nor are header bytes")
	require.Nil(t, messageOf(&sarama.ConsumerMessage{Topic: "t"}).Headers)
}

func TestRecordHeadersConvertedOncePerList(t *testing.T) {
	shared := []Header{{Key: []byte("a"), Value: []byte("1")}}
	equal := []Header{{Key: []byte("a"), Value: []byte("1")}}
	require.True(t, sameList(shared, shared))
	require.True(t, sameList(nil, []Header{}), "two empty lists convert alike")
	require.False(t, sameList(shared, equal), "equal but distinct lists are converted each")
	require.False(t, sameList(shared, shared[:0]))
	require.Equal(t, []sarama.RecordHeader{{Key: []byte("a"), Value: []byte("1")}}, recordHeaders(shared))
	require.Nil(t, recordHeaders(nil))
}
