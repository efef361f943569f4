package kafka

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/IBM/sarama"
)

// ErrNotFound is returned by Get for an offset with no record.
var ErrNotFound = errors.New("no record at that offset")

// Reader reads topics on behalf of a consumer group without joining it:
// from the group's committed offsets up to the high-water marks of when a
// read starts (the replayer's way, SPEC 6.2: a pass reads exactly what was
// there when it started). It commits nothing: a listing moves nothing, and
// a pass commits through the Claims of a Member, fenced by its generation.
type Reader struct {
	client   sarama.Client
	admin    sarama.ClusterAdmin
	consumer sarama.Consumer
	group    string
}

// NewReader connects, once, and reads from where consumer group group
// stands.
func NewReader(cfg Config, group string) (*Reader, error) {
	sc, err := consumerConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", explain(err, cfg))
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cluster admin: %w", err), client.Close())
	}
	// Closing the admin would close the shared client, so only the
	// consumer and the client are closed.
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("consumer: %w", err), client.Close())
	}
	return &Reader{client: client, admin: admin, consumer: consumer, group: group}, nil
}

// Close releases the consumer and the connection.
func (r *Reader) Close() error { return errors.Join(r.consumer.Close(), r.client.Close()) }

// Span is the part of one partition a read covers: [From, To).
type Span struct {
	Partition int32
	From, To  int64
}

// Spans returns, per partition of topic, the records not yet committed by
// the group: from the committed offset (or the oldest record) to the
// high-water mark now.
func (r *Reader) Spans(topic string) ([]Span, error) {
	if err := r.client.RefreshMetadata(topic); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	partitions, err := r.client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	committed, err := r.admin.ListConsumerGroupOffsets(r.group, map[string][]int32{topic: partitions})
	// A group that never committed is not an error: everything waits.
	if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		return nil, fmt.Errorf("committed offsets of %s: %w", r.group, err)
	}
	spans := make([]Span, 0, len(partitions))
	for _, p := range partitions {
		oldest, err := r.client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("oldest offset of %s/%d: %w", topic, p, err)
		}
		newest, err := r.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("newest offset of %s/%d: %w", topic, p, err)
		}
		from := oldest
		if committed != nil {
			// Records removed by retention since the commit are gone;
			// start at what is left.
			if b := committed.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError && b.Offset >= 0 {
				from = max(b.Offset, oldest)
			}
		}
		spans = append(spans, Span{Partition: p, From: from, To: newest})
	}
	return spans, nil
}

// readIdle is how long Read waits for the next record before it takes the
// span as read; far above a fetch from a live broker.
const readIdle = 5 * time.Second

// Read yields the records of span in offset order; an error ends it, as
// does the caller breaking out of the loop.
func (r *Reader) Read(ctx context.Context, topic string, span Span) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		if span.From >= span.To {
			return
		}
		pc, err := r.consumer.ConsumePartition(topic, span.Partition, span.From)
		if err != nil {
			yield(nil, fmt.Errorf("read %s/%d from %d: %w", topic, span.Partition, span.From, err))
			return
		}
		// Close, not AsyncClose: the partition consumer is deregistered
		// only once it has shut down, and reading the same partition again
		// before that (Measure after a pass, inspect after list) fails with
		// "That topic/partition is already being consumed".
		defer func() { _ = pc.Close() }()
		// The records before To may end in offsets that hold no data
		// record (transaction markers, compacted records): when nothing
		// arrives for readIdle the span is taken as read. A pass commits
		// only up to the last record it saw, so ending early only leaves
		// the rest for the next pass.
		idle := time.NewTimer(readIdle)
		defer idle.Stop()
		for {
			select {
			case <-ctx.Done():
				yield(nil, ctx.Err())
				return
			case <-idle.C:
				return
			case cerr, ok := <-pc.Errors():
				if ok {
					yield(nil, fmt.Errorf("read %s/%d: %w", topic, span.Partition, cerr.Err))
					return
				}
			case m, ok := <-pc.Messages():
				if !ok {
					yield(nil, fmt.Errorf("read %s/%d: consumer closed", topic, span.Partition))
					return
				}
				if m.Offset >= span.To || !yield(messageOf(m), nil) || m.Offset+1 >= span.To {
					return
				}
				idle.Reset(readIdle)
			}
		}
	}
}

// Get reads the record at topic/partition@offset.
func (r *Reader) Get(ctx context.Context, topic string, partition int32, offset int64) (*Message, error) {
	// A consumer started at the high-water mark waits for the next record
	// to be written: an offset at or past the end is answered at once.
	newest, err := r.client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("newest offset of %s/%d: %w", topic, partition, err)
	}
	if offset < 0 || offset >= newest {
		return nil, fmt.Errorf("%s/%d@%d: %w (the partition ends at %d)", topic, partition, offset, ErrNotFound, newest)
	}
	for m, err := range r.Read(ctx, topic, Span{Partition: partition, From: offset, To: offset + 1}) {
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			break
		}
		if err != nil {
			return nil, err
		}
		if m.Offset == offset {
			return m, nil
		}
		break
	}
	return nil, fmt.Errorf("%s/%d@%d: %w", topic, partition, offset, ErrNotFound)
}
