package kafka

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsumerReadTimeoutOutlastsJoins: the coordinator answers JoinGroup
// only once the group has formed, up to the rebalance timeout; a network
// read timeout shorter than that makes a member that joins a group waiting
// for a dead member time out and retry for ever, never getting a session.
func TestConsumerReadTimeoutOutlastsJoins(t *testing.T) {
	sc, err := consumerConfig(Config{Brokers: []string{"127.0.0.1:1"}, Version: "3.6.0", ClientID: "test"})
	require.NoError(t, err)
	require.Greater(t, sc.Net.ReadTimeout, sc.Consumer.Group.Rebalance.Timeout)
	require.Greater(t, sc.Consumer.Group.Rebalance.Timeout, sc.Consumer.Group.Session.Timeout,
		"a member ending its session (a flush) is not taken for dead first")
	require.False(t, sc.Metadata.AllowAutoTopicCreation, "brokers never create topics with their defaults for us")
}
