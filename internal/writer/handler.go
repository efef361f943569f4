package writer

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/kafka"
)

// handler is the kafka.GroupHandler of one writer. A session's claims
// (one goroutine per partition) decode records and pass them to the
// session's lanes: each lane is a batcher goroutine gathering the records
// of its share of the partitions and storing its batches one at a time, on
// a connection of its own, while the other lanes store theirs. A partition
// belongs to one lane for the session, so its records are stored, and its
// offsets marked, in order; the hash chains of a correlation_id (a record
// key, so one partition) are never moved by two lanes.
type handler struct {
	w     *Writer
	lanes []lane
	// next hands the session's claims to the lanes in turn.
	next atomic.Uint32
}

// lane is one batcher of a session.
type lane struct {
	items chan item
	done  chan struct{}
}

// session is the part of kafka.Session the batcher uses.
type session interface {
	Context() context.Context
	MarkMessage(msg *kafka.Message)
	Commit()
}

// Setup starts the batcher for a new session.
func (h *handler) Setup(sess *kafka.Session) error {
	h.w.sessionStarted()
	h.w.resumeForSession()
	h.w.log.Info("consumer group session started",
		zap.String("member_id", sess.MemberID()), zap.Int32("generation", sess.GenerationID()),
		zap.Any("claims", sess.Claims()))
	h.next.Store(0)
	h.lanes = make([]lane, h.w.cfg.FlushLanes)
	for i := range h.lanes {
		// Room for a whole batch, shared by the lanes, lets claims decode
		// the next batches while the current ones are being written; more
		// would only hold more records in memory while PostgreSQL is the
		// bottleneck.
		l := lane{items: make(chan item, max(h.w.cfg.BatchSize/len(h.lanes), 1)), done: make(chan struct{})}
		h.lanes[i] = l
		go h.w.batchLoop(sess, l.items, l.done)
	}
	return nil
}

// ConsumeClaim decodes a partition's records and hands them to the batcher.
// When the batcher is busy (a flush, a database outage) the send blocks,
// and with it the partition's fetching.
func (h *handler) ConsumeClaim(sess *kafka.Session, claim *kafka.Claim) error {
	partition := strconv.Itoa(int(claim.Partition()))
	lag := h.w.metrics.lag.WithLabelValues(claim.Topic(), partition)
	// A revoked partition is reported by its new owner; a stale value here
	// would count it twice.
	defer h.w.metrics.lag.DeleteLabelValues(claim.Topic(), partition)
	ctx := sess.Context()
	items := h.lanes[int(h.next.Add(1)-1)%len(h.lanes)].items
	for msg := range claim.Messages(ctx) {
		lag.Set(float64(max(claim.HighWaterMarkOffset()-msg.Offset-1, 0)))
		it := h.w.decode(msg)
		select {
		case items <- it:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// Cleanup runs after every claim has returned and before the group commits
// the session's offsets for the last time: the batcher flushes what it
// holds (one attempt, bounded by WriteTimeout) or abandons it for
// redelivery.
func (h *handler) Cleanup(sess *kafka.Session) error {
	for _, l := range h.lanes {
		close(l.items)
	}
	for _, l := range h.lanes {
		<-l.done
	}
	sess.Commit()
	h.w.sessionEnded(h.w.now())
	h.w.log.Info("consumer group session ended", zap.Int32("generation", sess.GenerationID()))
	return nil
}

// batchLoop gathers items and flushes on size or age, whichever comes
// first; when items is closed it flushes the rest one last time.
func (w *Writer) batchLoop(sess session, items <-chan item, done chan<- struct{}) {
	defer close(done)
	batch := make([]item, 0, w.cfg.BatchSize)
	age := time.NewTimer(w.cfg.BatchAge)
	age.Stop()
	defer age.Stop()
	for {
		select {
		case it, ok := <-items:
			if !ok {
				if len(batch) > 0 {
					w.flush(sess, batch, true)
				}
				return
			}
			batch = append(batch, it)
			if len(batch) == 1 {
				age.Reset(w.cfg.BatchAge)
			}
			if len(batch) < w.cfg.BatchSize {
				continue
			}
		case <-age.C:
		}
		if len(batch) == 0 {
			continue
		}
		age.Stop()
		if !w.flush(sess, batch, false) {
			// The session ended during an outage: the records stay
			// unmarked and another session will get them again. Drain
			// until Cleanup closes items.
			for range items {
			}
			return
		}
		batch = batch[:0]
	}
}
