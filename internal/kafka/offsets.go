package kafka

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// PartitionOffsets is where a consumer group stands on one partition.
type PartitionOffsets struct {
	Topic     string
	Partition int32
	// Committed is the group's committed offset: the next record it will
	// consume. Where the group has committed none, it is the partition's
	// oldest offset, where the group starts (Consumer.Offsets.Initial), so
	// that HighWatermark - Committed is always the records waiting.
	Committed int64
	// HighWatermark is the offset the partition's next record will get.
	HighWatermark int64
}

// Offsets returns the group's committed offset and the high-water mark of
// every partition of topics, whoever owns it, or nobody: unlike the lag a
// member sees of its own claims, they show records waiting in partitions
// that no member consumes (a group that cannot form).
func (g *ConsumerGroup) Offsets(topics []string) ([]PartitionOffsets, error) {
	if err := g.client.RefreshMetadata(topics...); err != nil {
		return nil, fmt.Errorf("metadata of %v: %w", topics, err)
	}
	parts := make(map[string][]int32, len(topics))
	for _, t := range topics {
		ps, err := g.client.Partitions(t)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", t, err)
		}
		parts[t] = ps
	}
	committed, err := g.admin.ListConsumerGroupOffsets(g.group, parts)
	if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		return nil, fmt.Errorf("committed offsets of %s: %w", g.group, err)
	}
	var out []PartitionOffsets
	for _, t := range topics {
		for _, p := range parts[t] {
			hwm, err := g.client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("high-water mark of %s/%d: %w", t, p, err)
			}
			at := int64(-1)
			if committed != nil {
				if b := committed.GetBlock(t, p); b != nil && b.Err == sarama.ErrNoError {
					at = b.Offset
				}
			}
			if at < 0 {
				if at, err = g.client.GetOffset(t, p, sarama.OffsetOldest); err != nil {
					return nil, fmt.Errorf("oldest offset of %s/%d: %w", t, p, err)
				}
			}
			out = append(out, PartitionOffsets{Topic: t, Partition: p, Committed: at, HighWatermark: hwm})
		}
	}
	return out, nil
}
