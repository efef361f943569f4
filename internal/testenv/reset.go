package testenv

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Reset replaces the embedded broker with a fresh one on the same
// addresses, as when a cluster is rebuilt or restored empty under running
// clients: every topic (and with it every topic id), record, committed
// offset and group is gone, and offsets start at 0 again. opts configure
// the new broker; kfake.AllowAutoTopicCreation with
// kfake.DefaultNumPartitions gives it the defaults of a broker that creates
// topics on first use. An external cluster (KAFKA_BROKERS) cannot be reset.
func (k *Kafka) Reset(opts ...kfake.Opt) error {
	if k.cluster == nil {
		return errors.New("testenv: an external Kafka cluster cannot be reset")
	}
	if k.creds != nil {
		return errors.New("testenv: a secured broker (StartSecureKafka) is not reset: its TLS and SASL would be lost")
	}
	return k.replaceCluster(func() error { return nil }, opts...)
}

// Topics describes topics (every one when none is named): partitions and
// topic ids, as the cluster reports them now.
func (k *Kafka) Topics(ctx context.Context, topics ...string) (kadm.TopicDetails, error) {
	details, err := k.admin.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe topics %v: %w", topics, err)
	}
	return details, nil
}

// TopicID returns topic's id as the writer derives event ids from it:
// base64url without padding, as Kafka's tools print it.
func (k *Kafka) TopicID(ctx context.Context, topic string) (string, error) {
	details, err := k.Topics(ctx, topic)
	if err != nil {
		return "", err
	}
	d, ok := details[topic]
	if !ok || d.Err != nil {
		return "", fmt.Errorf("topic id of %s: %v", topic, d.Err)
	}
	return base64.RawURLEncoding.EncodeToString(d.ID[:]), nil
}
