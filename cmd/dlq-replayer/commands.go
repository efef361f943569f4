package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/backoff"
	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/service"
	"github.com/auditstream/auditstream/internal/telemetry"
)

// progressEvery is how often a replay prints its running totals: often
// enough to show a long pass is moving, rarely enough not to drown the
// decisions printed on stdout.
const progressEvery = 2 * time.Second

// sessionWait bounds how long a command that moves records waits for its
// consumer group session: a rebalance lets the other members end theirs
// (a daemon's pass is cut short) and a dead member is dropped once its
// session times out, all well within it.
const sessionWait = time.Minute

// session is a command's Kafka connection: a reader of the DLQ topics and,
// for commands that move records, an acknowledged producer and a
// membership in the replayer's consumer group on the topic they move
// records from. Every mover (daemons, a manual replay) moves only the
// partitions the group gives it, and commits them fenced by its
// generation, so that two never move the same records.
type session struct {
	reader   *kafka.Reader
	producer *kafka.Producer
	member   *kafka.Member
	// leave ends the member's part in the group; left is closed once it has.
	leave context.CancelFunc
	left  chan struct{}
}

// connect opens the reader and, when producer is not nil, connects it and
// joins the group as a member on topic. The producer is built by the
// caller, once: its metrics are registered when it is built, and the
// daemon retries connect with the same one.
func connect(cfg config.Replayer, producer *kafka.Producer, topic string, log *zap.Logger) (*session, error) {
	reader, err := kafka.NewReader(cfg.Kafka.Client(), cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Kafka at %s: %w (check KAFKA_BROKERS / --kafka-brokers)", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	s := &session{reader: reader}
	if producer == nil {
		return s, nil
	}
	unreachable := func(err error) error {
		return errors.Join(fmt.Errorf("cannot reach Kafka at %s: %w", strings.Join(cfg.Kafka.Brokers, ","), err), s.close())
	}
	if err := producer.ConnectOnce(); err != nil {
		return nil, unreachable(err)
	}
	s.producer = producer
	consumer, err := kafka.NewConsumer(cfg.Kafka.Client(), cfg.Group, kafka.Membership{})
	if err != nil {
		return nil, errors.Join(err, s.close())
	}
	if s.member, err = consumer.JoinMember(topic, log.Named("group")); err != nil {
		return nil, unreachable(err)
	}
	ctx, leave := context.WithCancel(context.Background())
	s.leave, s.left = leave, make(chan struct{})
	go func() {
		defer close(s.left)
		_ = s.member.Run(ctx)
	}()
	return s, nil
}

// pass waits for the member's session (at most sessionWait) and runs one
// replay pass over the partitions it holds. others lists the partitions of
// o.From held by other members.
func (s *session) pass(ctx context.Context, o dlq.Options, progress dlq.Progress) (sum dlq.Summary, others []int32, err error) {
	wait, cancel := context.WithTimeout(ctx, sessionWait)
	defer cancel()
	for {
		if err := s.member.AwaitSession(wait); err != nil {
			return dlq.Summary{}, nil, fmt.Errorf("join consumer group: %w", err)
		}
		src := &claimedSource{reader: s.reader}
		ran, err := s.member.Pass(ctx, func(ctx context.Context, c *kafka.Claims) error {
			src.claims = c
			var err error
			sum, err = dlq.Replay(ctx, src, s.producer, o, progress)
			return err
		})
		if ran {
			if err != nil && ctx.Err() == nil && errors.Is(err, context.Canceled) {
				err = fmt.Errorf("pass cut short by a rebalance of consumer group; the partitions' next owner moves the rest: %w", err)
			}
			return sum, src.others, err
		}
		// The session ended between the two: wait for the next.
	}
}

// newProducer builds the acknowledged producer commands move records with.
func newProducer(cfg config.Replayer, log *zap.Logger, reg prometheus.Registerer) (*kafka.Producer, error) {
	return kafka.NewProducer(cfg.Kafka.Client(), cfg.Kafka.TopicSpecs(), log.Named("kafka"), reg)
}

func (s *session) close() error {
	var errs []error
	if s.member != nil {
		s.leave()
		<-s.left
	}
	if s.producer != nil {
		errs = append(errs, s.producer.Close())
	}
	errs = append(errs, s.reader.Close())
	return errors.Join(errs...)
}

func filterOf(f config.ReplayerFilters) dlq.Filter {
	return dlq.Filter{
		ErrorClass:    errclass.Class(f.ErrorClass),
		OriginalTopic: f.OriginalTopic,
		Key:           f.Key,
		OlderThan:     f.OlderThan,
		NewerThan:     f.NewerThan,
	}
}

// runReplay makes one pass and prints each decision and a summary.
func runReplay(ctx context.Context, cfg config.Replayer, log *zap.Logger, out, progress io.Writer) error {
	var producer *kafka.Producer
	if !cfg.Replay.DryRun {
		var err error
		if producer, err = newProducer(cfg, log, prometheus.NewRegistry()); err != nil {
			return err
		}
	}
	r := cfg.Replay
	from := cfg.Kafka.DLQTopic
	if r.FromParked {
		from = cfg.Kafka.ParkedTopic
	}
	s, err := connect(cfg, producer, from, log)
	if err != nil {
		return err
	}
	defer s.close()
	p := newPrinter(out, r.JSON)
	o := dlq.Options{From: from, ParkedTopic: cfg.Kafka.ParkedTopic, MaxAttempts: r.MaxAttempts,
		Filter: filterOf(r.ReplayerFilters), Limit: r.Limit}
	lastProgress := time.Now()
	report := func(d dlq.Decision, sum dlq.Summary) {
		if d.Action != dlq.ActionKeep {
			p.decision(d, time.Now())
		}
		if time.Since(lastProgress) >= progressEvery {
			lastProgress = time.Now()
			fmt.Fprintf(progress, "… %d read: %d replayed, %d parked, %d kept\n", sum.Read, sum.Replayed, sum.Parked, sum.Kept)
		}
	}
	var sum dlq.Summary
	var others []int32
	if r.DryRun {
		sum, err = dlq.DryRun(ctx, s.reader, o, report)
	} else {
		sum, others, err = s.pass(ctx, o, report)
	}
	p.flush()
	if err != nil {
		return fmt.Errorf("replay stopped after deciding %d replayed, %d parked, %d kept; a record leaves the DLQ only once Kafka acknowledged its copy, so the rest are still there: %w",
			sum.Replayed, sum.Parked, sum.Kept, err)
	}
	verb := "moved"
	if r.DryRun {
		verb = "would move (dry run: nothing was moved or committed)"
	}
	fmt.Fprintf(out, "%s from %s: %d replayed to their original topic, %d parked in %s; %d not selected, kept in %s\n",
		verb, from, sum.Replayed, sum.Parked, cfg.Kafka.ParkedTopic, sum.Kept, from)
	if len(others) > 0 {
		fmt.Fprintf(out, "partitions %v of %s are held by other members of consumer group %s (a running daemon): they move them, not this replay\n",
			others, from, cfg.Group)
	}
	return nil
}

// claimedSource is the part of a topic a member holds: the reader's spans
// of the claimed partitions, committed through the claims, fenced by their
// generation.
type claimedSource struct {
	reader *kafka.Reader
	claims *kafka.Claims
	// others are the partitions of the topic that the claims do not hold.
	others []int32
}

func (c *claimedSource) Spans(topic string) ([]kafka.Span, error) {
	all, err := c.reader.Spans(topic)
	if err != nil {
		return nil, err
	}
	held := all[:0:0]
	for _, span := range all {
		if c.claims.Holds(span.Partition) {
			held = append(held, span)
		} else {
			c.others = append(c.others, span.Partition)
		}
	}
	return held, nil
}

func (c *claimedSource) Read(ctx context.Context, topic string, span kafka.Span) iter.Seq2[*kafka.Message, error] {
	return c.reader.Read(ctx, topic, span)
}

func (c *claimedSource) Commit(_ string, partition int32, offset int64) error {
	return c.claims.Commit(partition, offset)
}

// runList prints the waiting records without moving or committing.
func runList(ctx context.Context, cfg config.Replayer, out io.Writer) error {
	s, err := connect(cfg, nil, "", nil)
	if err != nil {
		return err
	}
	defer s.close()
	topic := cfg.Kafka.DLQTopic
	if cfg.List.Parked {
		topic = cfg.Kafka.ParkedTopic
	}
	p := newPrinter(out, cfg.List.JSON)
	now := time.Now()
	n := 0
	err = dlq.List(ctx, s.reader, topic, filterOf(cfg.List.ReplayerFilters), cfg.List.Limit, now, func(r dlq.Record) {
		p.record(r, now)
		n++
	})
	p.flush()
	if err == nil && !cfg.List.JSON {
		fmt.Fprintf(out, "%d record(s) waiting in %s\n", n, topic)
	}
	return err
}

// runInspect prints one record in full.
func runInspect(ctx context.Context, cfg config.Replayer, out io.Writer) error {
	s, err := connect(cfg, nil, "", nil)
	if err != nil {
		return err
	}
	defer s.close()
	topic := cfg.Kafka.DLQTopic
	if cfg.Inspect.Parked {
		topic = cfg.Kafka.ParkedTopic
	}
	msg, err := s.reader.Get(ctx, topic, cfg.Inspect.Partition, cfg.Inspect.Offset)
	if err != nil {
		return err
	}
	return inspect(out, dlq.RecordOf(msg), time.Now(), cfg.Inspect.JSON)
}

// runDaemon passes every interval until SIGTERM and serves metrics and
// health meanwhile.
func runDaemon(ctx context.Context, cfg config.Replayer, log *zap.Logger) error {
	reg := telemetry.NewRegistry()
	m := newDaemonMetrics(reg)
	producer, err := newProducer(cfg, log, reg)
	if err != nil {
		return err
	}
	var s *session
	retry := backoff.ReplayerConnect.New()
	for {
		if s, err = connect(cfg, producer, cfg.Kafka.DLQTopic, log); err == nil {
			break
		}
		log.Warn("kafka unreachable, retrying", zap.Duration("backoff", retry.Next()), zap.Error(err))
		if !retry.Wait(ctx) {
			return nil
		}
	}
	defer s.close()

	health := telemetry.NewHealth(map[string]telemetry.Check{"kafka": s.producer.Check}, telemetry.WithLogger(log.Named("health")))
	srv := &http.Server{Addr: cfg.Run.MetricsAddr, Handler: telemetry.OpsMux(health, reg), ReadHeaderTimeout: 10 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return service.ServeHTTP(gctx, srv, health, log, 0, 5*time.Second) })
	g.Go(func() error {
		s.producer.KeepTopics(gctx, cfg.Kafka.TopicCheckInterval)
		return nil
	})
	g.Go(func() error {
		health.SetReady()
		log.Info("dlq-replayer running", zap.Duration("interval", cfg.Run.Interval), zap.Int("max_attempts", cfg.Run.MaxAttempts),
			zap.String("dlq_topic", cfg.Kafka.DLQTopic), zap.String("parked_topic", cfg.Kafka.ParkedTopic))
		ticker := time.NewTicker(cfg.Run.Interval)
		defer ticker.Stop()
		for {
			tick(gctx, cfg, s, m, log)
			select {
			case <-gctx.Done():
				return nil
			case <-ticker.C:
			}
		}
	})
	return g.Wait()
}

// tick moves the records of this daemon's partitions that were in the DLQ
// when it started, then measures what is left (in every partition).
func tick(ctx context.Context, cfg config.Replayer, s *session, m *daemonMetrics, log *zap.Logger) {
	// The tick starts once the member is in a session, so that what it
	// moves is what was there when it could first read.
	wait, cancel := context.WithTimeout(ctx, sessionWait)
	_ = s.member.AwaitSession(wait)
	cancel()
	start := time.Now()
	sum, _, err := s.pass(ctx, dlq.Options{
		From: cfg.Kafka.DLQTopic, ParkedTopic: cfg.Kafka.ParkedTopic, MaxAttempts: cfg.Run.MaxAttempts,
		Filter: dlq.Filter{Before: start},
	}, nil)
	m.observe(sum)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		// Measured all the same: waiting records and their age must keep
		// rising while passes fail, or the alerts on them never fire.
		m.passes.WithLabelValues("failed").Inc()
		log.Error("replay pass failed; the records not committed are retried next tick", zap.Error(err),
			zap.Int("replayed", sum.Replayed), zap.Int("parked", sum.Parked))
	default:
		m.passes.WithLabelValues("ok").Inc()
		m.lastPass.SetToCurrentTime()
		if sum.Read > 0 {
			log.Info("replay pass", zap.Int("replayed", sum.Replayed), zap.Int("parked", sum.Parked),
				zap.Int("kept", sum.Kept), zap.Duration("duration", time.Since(start)))
		}
	}
	for _, topic := range []string{cfg.Kafka.DLQTopic, cfg.Kafka.ParkedTopic} {
		st, err := dlq.Measure(ctx, s.reader, topic)
		if err != nil {
			log.Warn("measure topic", zap.String("topic", topic), zap.Error(err))
			continue
		}
		m.depth.WithLabelValues(topic).Set(float64(st.Depth))
		age := 0.0
		if !st.Oldest.IsZero() {
			age = time.Since(st.Oldest).Seconds()
		}
		m.oldest.WithLabelValues(topic).Set(age)
	}
}
