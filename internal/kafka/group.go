package kafka

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// ErrClosedConsumerGroup is returned by Consume once the group is closed.
var ErrClosedConsumerGroup = sarama.ErrClosedConsumerGroup

// Consumer reads topics as a member of one consumer group (the writer).
// NewConsumer checks the configuration without connecting; Join connects,
// once, so that the caller decides how long to retry.
type Consumer struct {
	cfg        Config
	group      string
	instanceID string
	sc         *sarama.Config
}

// Membership is how a consumer takes part in its group.
type Membership struct {
	// InstanceID, when set, makes the member static (KIP-345,
	// group.instance.id): a member that restarts under the same id within
	// the session timeout is given back its partitions by the coordinator
	// without a rebalance, instead of waiting for its dead predecessor's
	// session to expire. Two live members must never share one: the
	// coordinator fences the older (ErrFencedInstanceID).
	InstanceID string
	// SessionTimeout is how long the coordinator waits for a silent member
	// before it gives its partitions to the others; zero is sarama's
	// default (10 s).
	SessionTimeout time.Duration
}

// ErrFencedInstanceID is returned by Consume when another member joined
// with the same InstanceID.
var ErrFencedInstanceID = sarama.ErrFencedInstancedId

// NewConsumer checks cfg for a member of group.
func NewConsumer(cfg Config, group string, m Membership) (*Consumer, error) {
	sc, err := consumerConfig(cfg)
	if err != nil {
		return nil, err
	}
	if m.SessionTimeout > 0 {
		sc.Consumer.Group.Session.Timeout = m.SessionTimeout
		// Three heartbeats a session, as Kafka's clients default to.
		sc.Consumer.Group.Heartbeat.Interval = min(sc.Consumer.Group.Heartbeat.Interval, m.SessionTimeout/3)
	}
	sc.Consumer.Group.InstanceId = m.InstanceID
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("consumer group %s: %w", group, err)
	}
	return &Consumer{cfg: cfg, group: group, instanceID: m.InstanceID, sc: sc}, nil
}

// Join connects to the cluster as a member of the group; sessions start
// with Consume.
func (c *Consumer) Join() (*ConsumerGroup, error) {
	// A client of our own, not one the group makes for itself: each
	// session looks up its topics' ids through it (topicIDs).
	client, err := sarama.NewClient(c.cfg.Brokers, c.sc)
	if err != nil {
		return nil, fmt.Errorf("join consumer group %s: %w", c.group, explain(err, c.cfg))
	}
	g, err := sarama.NewConsumerGroupFromClient(c.group, client)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("join consumer group %s: %w", c.group, err), client.Close())
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cluster admin: %w", err), g.Close(), client.Close())
	}
	return &ConsumerGroup{g: g, group: c.group, instanceID: c.instanceID, client: client, admin: admin}, nil
}

// ConsumerGroup is a joined member of a consumer group.
type ConsumerGroup struct {
	g          sarama.ConsumerGroup
	group      string
	instanceID string
	client     sarama.Client
	// admin shares client; closing it would close the client.
	admin sarama.ClusterAdmin
}

// GroupHandler runs the sessions of a ConsumerGroup, as sarama's
// ConsumerGroupHandler does: Setup when a session starts, ConsumeClaim in a
// goroutine of its own for each partition claimed, Cleanup once every
// ConsumeClaim has returned and before the session's last offset commit.
type GroupHandler interface {
	Setup(*Session) error
	ConsumeClaim(*Session, *Claim) error
	Cleanup(*Session) error
}

// Consume runs one session of the group on topics: it returns at the next
// rebalance, when ctx ends, or with ErrClosedConsumerGroup once Close was
// called. Call it in a loop to stay in the group.
func (g *ConsumerGroup) Consume(ctx context.Context, topics []string, h GroupHandler) error {
	return g.g.Consume(ctx, topics, &groupHandler{h: h, group: g})
}

// Errors delivers the errors of the background work (fetches, commits,
// heartbeats) until the group is closed; it must be drained.
func (g *ConsumerGroup) Errors() <-chan error { return g.g.Errors() }

// PauseAll stops fetching every partition the member owns; what was already
// fetched is still delivered. The pause outlives sessions.
func (g *ConsumerGroup) PauseAll() { g.g.PauseAll() }

// ResumeAll fetches every paused partition again.
func (g *ConsumerGroup) ResumeAll() { g.g.ResumeAll() }

// Close leaves the group, after the session under way has ended, and
// closes the connection. A static member leaves too: sarama only forgets
// its member id (KIP-345 keeps a closed static member in the group until
// its session expires, for a restart under the same id), but a member
// stopped on purpose may be replaced by one of another name (a new pod of
// a Deployment, a scale-down), and its partitions would sit idle for the
// session timeout. Only a crash keeps the membership for a restart.
func (g *ConsumerGroup) Close() error {
	err := g.g.Close()
	if g.instanceID != "" && err == nil {
		if _, lerr := g.admin.RemoveMemberFromConsumerGroup(g.group, []string{g.instanceID}); lerr != nil {
			err = fmt.Errorf("leave consumer group %s as %s: %w", g.group, g.instanceID, lerr)
		}
	}
	return errors.Join(err, g.client.Close())
}

// groupHandler gives sarama's callbacks our types. Setup looks up the ids
// of the claimed topics once per session: a topic deleted and created
// again under the same name gets a new id, and its partitions are only
// claimed again by a new session.
type groupHandler struct {
	h     GroupHandler
	group *ConsumerGroup
	// sessions maps sarama's session to ours, from Setup to Cleanup.
	sessions sync.Map
}

func (a *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	topics := make([]string, 0, len(s.Claims()))
	for t := range s.Claims() {
		topics = append(topics, t)
	}
	ids, err := topicIDs(a.group.admin, topics)
	if err != nil {
		return err
	}
	sess := &Session{s: s, group: a.group, topicIDs: ids}
	a.sessions.Store(s, sess)
	return a.h.Setup(sess)
}

func (a *groupHandler) session(s sarama.ConsumerGroupSession) *Session {
	sess, _ := a.sessions.Load(s)
	return sess.(*Session)
}

func (a *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	sess := a.session(s)
	return a.h.ConsumeClaim(sess, &Claim{c: c, topicID: sess.topicIDs[c.Topic()]})
}

func (a *groupHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	defer a.sessions.Delete(s)
	return a.h.Cleanup(a.session(s))
}

// Session is one generation of the group: the partitions claimed from one
// rebalance to the next.
type Session struct {
	s     sarama.ConsumerGroupSession
	group *ConsumerGroup
	// topicIDs are the ids of the claimed topics ("" where the broker has
	// none), as of the session's start.
	topicIDs map[string]string
}

// Context ends when the session does (a rebalance, or the group closing).
func (s *Session) Context() context.Context { return s.s.Context() }

// MemberID is the member's id in the group.
func (s *Session) MemberID() string { return s.s.MemberID() }

// GenerationID is the generation of the session.
func (s *Session) GenerationID() int32 { return s.s.GenerationID() }

// Claims returns the partitions claimed, by topic.
func (s *Session) Claims() map[string][]int32 { return s.s.Claims() }

// MarkMessage marks msg as handled: the group's next commit records the
// offset after it.
func (s *Session) MarkMessage(msg *Message) {
	s.s.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1, "")
}

// Commit commits the marked offsets now, and waits for the answer.
func (s *Session) Commit() { s.s.Commit() }

// Claim is one partition claimed by a session.
type Claim struct {
	c       sarama.ConsumerGroupClaim
	topicID string
}

// Topic is the claimed partition's topic.
func (c *Claim) Topic() string { return c.c.Topic() }

// Partition is the claimed partition.
func (c *Claim) Partition() int32 { return c.c.Partition() }

// HighWaterMarkOffset is the offset the partition's next record will get,
// as of the last fetch.
func (c *Claim) HighWaterMarkOffset() int64 { return c.c.HighWaterMarkOffset() }

// Messages yields the partition's records in offset order until the claim
// ends (a rebalance) or ctx does.
func (c *Claim) Messages(ctx context.Context) iter.Seq[*Message] {
	return func(yield func(*Message) bool) {
		msgs := c.c.Messages()
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					return
				}
				msg := messageOf(m)
				msg.TopicID = c.topicID
				if !yield(msg) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}
