package spool

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/backoff"
	"github.com/auditstream/auditstream/internal/kafka"
)

// drainBatch is the most records one drain publish hands to Kafka: one
// SendMessages of a few round trips, and few enough that a publish that
// times out repeats little.
const drainBatch = 1000

// Publisher is a message.Publisher in front of the Kafka publisher: it
// publishes straight to Kafka while the spool is empty, keeps records in
// the spool when Kafka cannot take them (Publish then returns an error
// wrapping ErrSpooled: accepted, 202), and while the spool holds records
// puts new ones behind them, so that records of one key keep their order.
// Run drains the spool.
type Publisher struct {
	next  message.Publisher
	store *Store
	log   *zap.Logger
	now   func() time.Time
	// wake tells the drainer that records were spooled.
	wake chan struct{}
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher spools in front of next (kafka.Publisher), in store.
func NewPublisher(next message.Publisher, store *Store, log *zap.Logger) *Publisher {
	return &Publisher{next: next, store: store, log: log, now: time.Now, wake: make(chan struct{}, 1)}
}

// Publish hands msgs to Kafka, or to the spool: when the spool holds
// records already, or when Kafka did not take them within its publish
// timeout for a reason that may clear (kafka.Retriable). It returns nil
// when Kafka acknowledged them all; an error wrapping ErrSpooled when they
// are in the spool, on disk; ErrFull or ErrUnwritable (joined with Kafka's
// error) when neither took them; Kafka's error for records Kafka refused
// for what they are, which no retry delivers and the spool never keeps.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if p.store.Backlog() {
		spooled, err := p.store.append(p.encode(topic, msgs), true)
		if spooled {
			return p.answer(err, nil)
		}
	}
	err := p.next.Publish(topic, msgs...)
	if err == nil || !kafka.Retriable(err) {
		return err
	}
	_, serr := p.store.append(p.encode(topic, msgs), false)
	return p.answer(serr, err)
}

func (p *Publisher) encode(topic string, msgs []*message.Message) [][]byte {
	at := p.now()
	recs := make([][]byte, len(msgs))
	for i, m := range msgs {
		recs[i] = encodeRecord(topic, m, at)
	}
	return recs
}

// answer is Publish's error for records given to the spool: spoolErr is
// the spool's, kafkaErr what sent them there (nil when they went behind
// records already spooled).
func (p *Publisher) answer(spoolErr, kafkaErr error) error {
	if spoolErr != nil {
		if kafkaErr != nil {
			return fmt.Errorf("%w (Kafka: %w)", spoolErr, kafkaErr)
		}
		return spoolErr
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	if kafkaErr != nil {
		return fmt.Errorf("%w (Kafka: %w)", ErrSpooled, kafkaErr)
	}
	return ErrSpooled
}

// Run is the drainer: it publishes the spooled records in spool order, a
// batch at a time, as soon as Kafka acknowledges again (retrying with
// backoff meanwhile), and removes them only once acknowledged. A record
// Kafka did take although the publish failed (no acknowledgement in time)
// is published again; its id was assigned before it was spooled, so the
// writer stores it once. It returns when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	if p.store.broken != nil {
		<-ctx.Done()
		return nil
	}
	retry := backoff.SpoolDrain.New()
	for {
		batch, err := p.store.peek(drainBatch)
		if err == nil && len(batch) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-p.wake:
				continue
			}
		}
		if err == nil {
			err = p.publishHead(batch)
		}
		if err == nil {
			retry.Reset()
			continue
		}
		p.log.Warn("spool: cannot drain yet, retrying", zap.Int("records", p.store.State().Records),
			zap.Duration("backoff", retry.Next()), zap.Error(err))
		if !retry.Wait(ctx) {
			return nil
		}
	}
}

// publishHead publishes the leading records of batch that share its first
// record's topic (one Publish is one topic) and acknowledges them.
func (p *Publisher) publishHead(batch []entry) error {
	topic := batch[0].topic
	msgs := make([]*message.Message, 0, len(batch))
	for _, e := range batch {
		if e.topic != topic {
			break
		}
		msgs = append(msgs, e.msg)
	}
	if err := p.next.Publish(topic, msgs...); err != nil {
		return err
	}
	p.store.ack(len(msgs))
	p.store.metrics.drained.Add(float64(len(msgs)))
	return nil
}

// WaitDrained returns once the spool holds no record, or when ctx ends
// (with its error). With Kafka reachable at start, the API reports itself
// ready only after draining what a previous process left (SPEC 11).
func (p *Publisher) WaitDrained(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for p.store.Backlog() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Close closes the Kafka publisher behind the spool (the Store is closed
// by its owner).
func (p *Publisher) Close() error { return p.next.Close() }
