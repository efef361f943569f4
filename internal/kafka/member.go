package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/backoff"
)

// Member is a member of a consumer group that handles its claimed
// partitions of one topic in passes rather than as a stream: the
// replayer's way. Passes read with a Reader and commit through Claims,
// fenced by the group's generation, so that several members (daemons, an
// SRE's manual run) never move the same records: each moves only the
// partitions it was given, within the generation it was given them in.
//
// sarama's own fetching of the claims is paused: the records are read by
// the passes. A session ends (a rebalance) only once the pass under way
// has returned, and a pass ends early when its session does; records it
// published but did not commit are moved again by the next owner, which
// the writer's de-duplication absorbs.
type Member struct {
	group *ConsumerGroup
	topic string
	log   *zap.Logger

	// mu is held by a pass; a session's claims end only after it.
	mu      sync.Mutex
	current *Claims
	// started is closed and replaced whenever a session starts.
	started chan struct{}
}

// Claims are the partitions of a Member's topic in one generation.
type Claims struct {
	sess       *Session
	Topic      string
	Partitions []int32
}

// Holds reports whether partition is one of the claims.
func (c *Claims) Holds(partition int32) bool { return slices.Contains(c.Partitions, partition) }

// Commit records, for the group, that the claims' topic has been handled
// on partition up to (not including) offset, and waits for the
// coordinator's answer. It fails once the generation has moved on: a
// member that lost the partition cannot move its offset.
func (c *Claims) Commit(partition int32, offset int64) error {
	if !c.Holds(partition) {
		return fmt.Errorf("commit %s/%d@%d: partition not claimed in generation %d", c.Topic, partition, offset, c.sess.GenerationID())
	}
	return c.sess.commit(c.Topic, partition, offset)
}

// JoinMember connects as a member of the consumer's group on topic;
// sessions start once Run is called.
func (c *Consumer) JoinMember(topic string, log *zap.Logger) (*Member, error) {
	g, err := c.Join()
	if err != nil {
		return nil, err
	}
	return &Member{group: g, topic: topic, log: log, started: make(chan struct{})}, nil
}

// Run takes part in the group until ctx ends or Close is called, joining
// again after every rebalance.
func (m *Member) Run(ctx context.Context) error {
	errs := make(chan struct{})
	go func() {
		defer close(errs)
		for err := range m.group.Errors() {
			m.log.Warn("consumer group error", zap.String("topic", m.topic), zap.Error(err))
		}
	}()
	defer func() {
		// Errors is closed once the group is.
		_ = m.Close()
		<-errs
	}()
	retry := backoff.KafkaConnect.New()
	for ctx.Err() == nil {
		err := m.group.Consume(ctx, []string{m.topic}, memberHandler{m})
		if errors.Is(err, ErrClosedConsumerGroup) {
			return nil
		}
		if err == nil {
			retry.Reset()
			continue
		}
		m.log.Warn("consume failed, joining again", zap.String("topic", m.topic), zap.Duration("backoff", retry.Next()), zap.Error(err))
		if !retry.Wait(ctx) {
			break
		}
	}
	return nil
}

// AwaitSession waits until the member is in a session.
func (m *Member) AwaitSession(ctx context.Context) error {
	m.mu.Lock()
	if m.current != nil {
		m.mu.Unlock()
		return nil
	}
	started := m.started
	m.mu.Unlock()
	select {
	case <-started:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no consumer group session on %s: %w", m.topic, ctx.Err())
	}
}

// Pass runs fn with the claims of the session under way, if there is one
// (ran reports it); fn's context ends when the session does. The session
// does not end before fn has returned.
func (m *Member) Pass(ctx context.Context, fn func(ctx context.Context, c *Claims) error) (ran bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.current
	if c == nil {
		return false, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.sess.Context(), cancel)
	defer stop()
	return true, fn(ctx, c)
}

// Close leaves the group (after a pass under way) and closes the
// connection. It may be called more than once.
func (m *Member) Close() error {
	err := m.group.Close()
	if errors.Is(err, sarama.ErrClosedConsumerGroup) || errors.Is(err, sarama.ErrClosedClient) {
		return nil
	}
	return err
}

// memberHandler is the GroupHandler of a Member.
type memberHandler struct{ m *Member }

func (h memberHandler) Setup(sess *Session) error {
	c := &Claims{sess: sess, Topic: h.m.topic, Partitions: slices.Sorted(slices.Values(sess.Claims()[h.m.topic]))}
	h.m.mu.Lock()
	h.m.current = c
	close(h.m.started)
	h.m.started = make(chan struct{})
	h.m.mu.Unlock()
	h.m.log.Info("consumer group session started", zap.String("topic", h.m.topic),
		zap.Int32("generation", sess.GenerationID()), zap.Int32s("partitions", c.Partitions))
	return nil
}

// ConsumeClaim stops sarama's fetching of the partition, which passes read
// themselves, and holds the claim until the session ends and any pass
// using it has returned.
func (h memberHandler) ConsumeClaim(sess *Session, _ *Claim) error {
	h.m.group.PauseAll()
	<-sess.Context().Done()
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return nil
}

func (h memberHandler) Cleanup(sess *Session) error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.m.current != nil && h.m.current.sess == sess {
		h.m.current = nil
	}
	h.m.log.Info("consumer group session ended", zap.String("topic", h.m.topic), zap.Int32("generation", sess.GenerationID()))
	return nil
}

// commit sends one offset commit of the session's generation and member
// id and waits for the coordinator's answer, unlike sarama's own
// (MarkOffset, Commit), which reports failures only on Errors, later.
func (s *Session) commit(topic string, partition int32, offset int64) error {
	broker, err := s.group.client.Coordinator(s.group.group)
	if err != nil {
		return fmt.Errorf("commit %s/%d@%d: coordinator of %s: %w", topic, partition, offset, s.group.group, err)
	}
	req := sarama.NewOffsetCommitRequest(s.group.client.Config(), s.group.group)
	req.ConsumerGroupGeneration = s.GenerationID()
	req.ConsumerID = s.MemberID()
	req.AddBlockWithLeaderEpoch(topic, partition, offset, -1, 0, "")
	resp, err := broker.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("commit %s/%d@%d: %w", topic, partition, offset, err)
	}
	if kerr := resp.Errors[topic][partition]; kerr != sarama.ErrNoError {
		return fmt.Errorf("commit %s/%d@%d in generation %d: %w", topic, partition, offset, s.GenerationID(), kerr)
	}
	return nil
}
