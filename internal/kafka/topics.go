package kafka

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"
)

// ensureTopics creates the topics that do not exist, with their
// configured partitions and settings, and returns the names it created. Existing topics
// are left as they are (partition counts are never changed behind an
// operator's back, since that would move keys between partitions).
func ensureTopics(client sarama.Client, topics []Topic) ([]string, error) {
	if len(topics) == 0 {
		return nil, nil
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("cluster admin: %w", err)
	}
	// Closing the admin would close the shared client, so it is not closed.
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	// Metadata of only these topics: cheap enough to ask every few
	// seconds, unlike listing every topic of the cluster with its configs.
	described, err := admin.DescribeTopics(names)
	if err != nil {
		return nil, fmt.Errorf("describe topics: %w", err)
	}
	missing := make(map[string]bool, len(names))
	for _, d := range described {
		if errors.Is(d.Err, sarama.ErrUnknownTopicOrPartition) {
			missing[d.Name] = true
		}
	}
	var created []string
	var errs []error
	for _, t := range topics {
		if !missing[t.Name] {
			continue
		}
		var entries map[string]*string
		for k, v := range t.Config {
			if entries == nil {
				entries = make(map[string]*string, len(t.Config))
			}
			entries[k] = &v
		}
		err := admin.CreateTopic(t.Name, &sarama.TopicDetail{
			NumPartitions:     t.Partitions,
			ReplicationFactor: t.ReplicationFactor,
			ConfigEntries:     entries,
		}, false)
		switch {
		case err == nil:
			created = append(created, t.Name)
		case !errors.Is(err, sarama.ErrTopicAlreadyExists):
			errs = append(errs, fmt.Errorf("create topic %s: %w", t.Name, err))
		}
	}
	return created, errors.Join(errs...)
}

// topicIDs returns the id of each of topics, "" where the broker assigns
// none (before Kafka 2.8, or a protocol version below metadata v10).
func topicIDs(admin sarama.ClusterAdmin, topics []string) (map[string]string, error) {
	if len(topics) == 0 {
		// An empty list would ask for every topic of the cluster.
		return nil, nil
	}
	described, err := admin.DescribeTopics(topics)
	if err != nil {
		return nil, fmt.Errorf("topic ids: %w", err)
	}
	ids := make(map[string]string, len(topics))
	for _, d := range described {
		if d.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("topic id of %s: %w", d.Name, d.Err)
		}
		ids[d.Name] = formatTopicID(d.Uuid)
	}
	for _, t := range topics {
		if _, ok := ids[t]; !ok {
			return nil, fmt.Errorf("topic id of %s: not in the metadata", t)
		}
	}
	return ids, nil
}

// formatTopicID writes an id as Kafka's tools print it: base64url without
// padding (22 characters). The zero id is a broker that has none.
func formatTopicID(id sarama.Uuid) string {
	if id == (sarama.Uuid{}) {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// KeepTopics creates any of the producer's topics that has gone missing,
// every interval and at once when a publish finds a topic unknown, until
// ctx ends. Start-up creates them too (Connect); this covers a cluster
// rebuilt or restored empty under running binaries, which would otherwise
// get its topics from whoever writes first, with the broker's defaults, or
// not at all.
func (p *Producer) KeepTopics(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.topicsMissing:
		}
		conn := p.conn.Load()
		if conn == nil {
			continue
		}
		created, err := ensureTopics(conn.client, p.topics)
		if len(created) > 0 {
			p.log.Warn("topics were missing: created them with their configured partitions and settings",
				zap.Strings("topics", created))
		}
		if err != nil {
			p.log.Warn("check topics", zap.Error(err))
		}
	}
}

// noteUnknownTopic asks KeepTopics to look now when err says a topic is
// unknown to the cluster.
func (p *Producer) noteUnknownTopic(err error) {
	if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return
	}
	select {
	case p.topicsMissing <- struct{}{}:
	default:
	}
}
