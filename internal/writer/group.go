package writer

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/kafka"
)

// groupState is what the writer knows of its consumer group: whether it is
// in a session, since when it has not been, and how many records wait in
// the group's partitions, owned or not. A writer that keeps failing to
// join owns nothing and writes nothing, and without this it would look
// healthy while its partitions fall behind.
type groupState struct {
	inSession atomic.Bool
	// noSessionSince is when the last session ended (or the writer
	// started), in Unix nanoseconds.
	noSessionSince atomic.Int64
	// waiting is the records behind the group's commits as of the last
	// poll, -1 before the first.
	waiting atomic.Int64
	// reported keeps the stall from being logged on every poll.
	reported atomic.Bool
}

func (g *groupState) init(now time.Time) {
	g.noSessionSince.Store(now.UnixNano())
	g.waiting.Store(-1)
}

func (w *Writer) sessionStarted() {
	w.inSession.Store(true)
	w.reported.Store(false)
	w.metrics.groupSession.Set(1)
}

func (w *Writer) sessionEnded(now time.Time) {
	w.noSessionSince.Store(now.UnixNano())
	w.inSession.Store(false)
	w.metrics.groupSession.Set(0)
}

// stalled returns why the writer is stalled, or nil: out of a session for
// GroupStallTimeout while records wait. Without records waiting an idle
// writer that cannot join loses nothing yet; a rebalance (a session ending
// and the next starting) takes seconds, well below the timeout.
func (w *Writer) stalled(now time.Time) error {
	if w.inSession.Load() {
		return nil
	}
	out := now.Sub(time.Unix(0, w.noSessionSince.Load()))
	if waiting := w.waiting.Load(); out >= w.cfg.GroupStallTimeout && waiting > 0 {
		return fmt.Errorf("no consumer group session of %s for %s while %d records wait: the writer consumes nothing",
			w.cfg.Group, out.Round(time.Second), waiting)
	}
	return nil
}

// watchGroup reads the group's committed offsets and the high-water marks
// of every partition of the writer's topics every GroupPollInterval, for
// the metrics (lag of partitions nobody owns included) and for stalled.
func (w *Writer) watchGroup(ctx context.Context, group *kafka.ConsumerGroup) {
	topics := []string{w.cfg.EventsTopic, w.cfg.NotificationsTopic}
	tick := time.NewTicker(w.cfg.GroupPollInterval)
	defer tick.Stop()
	for {
		if offsets, err := group.Offsets(topics); err != nil {
			w.log.Warn("read the consumer group's offsets", zap.String("group", w.cfg.Group), zap.Error(err))
		} else {
			w.recordOffsets(offsets)
		}
		if err := w.stalled(w.now()); err != nil && !w.reported.Swap(true) {
			w.log.Error("writer stalled", zap.String("group", w.cfg.Group), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *Writer) recordOffsets(offsets []kafka.PartitionOffsets) {
	var waiting int64
	for _, o := range offsets {
		p := strconv.Itoa(int(o.Partition))
		w.metrics.committedOffset.WithLabelValues(o.Topic, p).Set(float64(o.Committed))
		w.metrics.highWatermark.WithLabelValues(o.Topic, p).Set(float64(o.HighWatermark))
		waiting += max(o.HighWatermark-o.Committed, 0)
	}
	w.waiting.Store(waiting)
}
