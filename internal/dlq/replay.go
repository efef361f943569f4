package dlq

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/kafka"
)

// Action is what a replay pass does with one record.
type Action string

const (
	// ActionReplay sends the record back to its original topic.
	ActionReplay Action = "replay"
	// ActionPark sends a record that used up its replays to the parked topic.
	ActionPark Action = "park"
	// ActionKeep re-appends a record a filter did not select to the end of
	// the topic it was read from, so the pass can commit past it without
	// losing it.
	ActionKeep Action = "keep"
)

// Record is a dead letter as read from the DLQ (or the parked topic).
type Record struct {
	kafka.Message
	Letter Letter
	// Enveloped is false when the dlq-original-* headers are missing or
	// malformed (a record a producer wrote to the DLQ by hand): it cannot
	// be sent back, since nobody knows where it came from.
	Enveloped bool
}

// RecordOf reads the letter of a record read from the DLQ.
func RecordOf(msg *kafka.Message) Record {
	l, ok := Parse(msg.Headers)
	return Record{Message: *msg, Letter: l, Enveloped: ok}
}

// Filter selects records; zero fields select everything.
type Filter struct {
	ErrorClass    errclass.Class
	OriginalTopic string
	Key           string
	// OlderThan / NewerThan compare the age of the last failure
	// (dlq-failed-at) with now.
	OlderThan time.Duration
	NewerThan time.Duration
	// Before selects records written to the DLQ before this time: the
	// daemon moves what was there at the start of its tick.
	Before time.Time
}

// Match reports whether r is selected at time now.
func (f Filter) Match(r Record, now time.Time) bool {
	age := now.Sub(r.Letter.FailedAt)
	switch {
	case f.ErrorClass != errclass.None && r.Letter.Class != f.ErrorClass,
		f.OriginalTopic != "" && r.Letter.OriginalTopic != f.OriginalTopic,
		f.Key != "" && string(r.Key) != f.Key,
		f.OlderThan > 0 && age < f.OlderThan,
		f.NewerThan > 0 && age > f.NewerThan,
		!f.Before.IsZero() && !r.Timestamp.Before(f.Before):
		return false
	}
	return true
}

// Reader reads what waits in a topic for the group (kafka.Reader): Spans
// bounds each partition at the high-water mark of when it is called, Read
// yields a span's records in offset order.
type Reader interface {
	Spans(topic string) ([]kafka.Span, error)
	Read(ctx context.Context, topic string, span kafka.Span) iter.Seq2[*kafka.Message, error]
}

// Source is a Reader that also records how far the group has handled a
// partition (the replayer's kafka.Reader over the partitions its group
// member holds, committing through the member's kafka.Claims).
type Source interface {
	Reader
	Commit(topic string, partition int32, offset int64) error
}

// Publisher returns once Kafka has acknowledged every record
// (kafka.Producer).
type Publisher interface {
	Publish(ctx context.Context, records []kafka.Record) error
}

// Options drive one pass.
type Options struct {
	// From is the topic read: the DLQ, or the parked topic.
	From        string
	ParkedTopic string
	// MaxAttempts: a DLQ record replayed this many times is parked instead.
	MaxAttempts int
	Filter      Filter
	// Limit stops the pass after this many selected records (0: no limit).
	Limit int
	// Now is the clock the filter's ages are measured with (default
	// time.Now).
	Now func() time.Time
}

// Summary counts what a pass did.
type Summary struct {
	Read     int `json:"read"`
	Replayed int `json:"replayed"`
	Parked   int `json:"parked"`
	Kept     int `json:"kept"`
}

// Decision is what a pass did, or would do, with one record.
type Decision struct {
	Record Record
	Action Action
	// To is the topic the record goes to.
	To string
}

// Decide returns what a pass does with r.
func Decide(r Record, o Options, now time.Time) Decision {
	if !o.Filter.Match(r, now) {
		return Decision{Record: r, Action: ActionKeep, To: o.From}
	}
	fromParked := o.From == o.ParkedTopic
	if !r.Enveloped {
		// Without its origin a record cannot be replayed; parking it keeps
		// it for a human instead of failing every pass on it.
		if fromParked {
			return Decision{Record: r, Action: ActionKeep, To: o.From}
		}
		return Decision{Record: r, Action: ActionPark, To: o.ParkedTopic}
	}
	// A conflict never clears by replaying: the stored event it clashes
	// with is never replaced. It waits in the parked topic for a person
	// (docs/runbooks/dlq.md) instead of cycling through its attempts.
	if !fromParked && (r.Letter.Attempts >= o.MaxAttempts || r.Letter.Class == errclass.Conflict) {
		return Decision{Record: r, Action: ActionPark, To: o.ParkedTopic}
	}
	return Decision{Record: r, Action: ActionReplay, To: r.Letter.OriginalTopic}
}

// outgoing builds the record a decision publishes. A replayed record
// carries its letter with one more attempt; parked and kept records keep
// their headers exactly.
func outgoing(d Decision) kafka.Record {
	headers := d.Record.Headers
	if d.Action == ActionReplay {
		l := d.Record.Letter
		l.Attempts++
		headers = l.Headers(d.Record.Headers)
	}
	return kafka.Record{Topic: d.To, Key: d.Record.Key, Value: d.Record.Value, Headers: headers}
}

// Progress is called after each decision with the totals so far,
// including that decision.
type Progress func(d Decision, total Summary)

// publishBatch is how many records of a partition a pass publishes at once
// before committing past them: one SendMessages of this many costs a few
// broker round trips, and a crash between publish and commit repeats at
// most this many, which the writer's de-duplication absorbs.
const publishBatch = 500

// Replay moves the records present in o.From when it starts: selected ones
// back to their original topic (or to the parked topic once they used up
// their replays), the others re-appended to o.From. Each partition's
// records are published and acknowledged before its offset is committed,
// so a crash mid-pass loses nothing; records published twice are absorbed
// by the writer's de-duplication. progress may be nil.
func Replay(ctx context.Context, src Source, dst Publisher, o Options, progress Progress) (Summary, error) {
	return newPass(o, progress).run(ctx, src, &move{src: src, dst: dst, topic: o.From})
}

// DryRun decides what Replay would do with each record and reports it,
// publishing and committing nothing. progress may be nil.
func DryRun(ctx context.Context, src Reader, o Options, progress Progress) (Summary, error) {
	return newPass(o, progress).run(ctx, src, discard{})
}

// pass reads each partition of o.From, decides every record and hands the
// decision to a mover.
type pass struct {
	o        Options
	now      func() time.Time
	progress Progress
	sum      Summary
	// selected counts the records the filter selected, for o.Limit.
	selected int
}

func newPass(o Options, progress Progress) *pass {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	return &pass{o: o, now: now, progress: progress}
}

// mover is where decisions go: moved (Replay) or dropped (DryRun). Records
// arrive in offset order, one partition at a time; flush ends a partition.
type mover interface {
	add(ctx context.Context, d Decision) error
	flush(ctx context.Context) error
}

func (p *pass) run(ctx context.Context, src Reader, mv mover) (Summary, error) {
	spans, err := src.Spans(p.o.From)
	if err != nil {
		return Summary{}, err
	}
	for _, span := range spans {
		more, err := p.read(ctx, src, span, mv)
		if err != nil {
			return p.sum, err
		}
		if !more {
			break
		}
	}
	return p.sum, nil
}

// read decides the records of one span and moves them; more is false once
// the limit is reached.
func (p *pass) read(ctx context.Context, src Reader, span kafka.Span, mv mover) (more bool, err error) {
	more = true
	for msg, err := range src.Read(ctx, p.o.From, span) {
		if err != nil {
			return false, err
		}
		d, ok := p.decide(RecordOf(msg))
		if !ok {
			more = false
			break
		}
		if err := mv.add(ctx, d); err != nil {
			return false, err
		}
	}
	// What was decided before the limit, or before the span ended, moves.
	return more, mv.flush(ctx)
}

// decide returns what to do with r and counts it; ok is false, and nothing
// counted, when r would be one selected record past the limit.
func (p *pass) decide(r Record) (d Decision, ok bool) {
	d = Decide(r, p.o, p.now())
	if d.Action != ActionKeep {
		if p.o.Limit > 0 && p.selected >= p.o.Limit {
			return Decision{}, false
		}
		p.selected++
	}
	p.sum.Read++
	switch d.Action {
	case ActionReplay:
		p.sum.Replayed++
	case ActionPark:
		p.sum.Parked++
	case ActionKeep:
		p.sum.Kept++
	}
	if p.progress != nil {
		p.progress(d, p.sum)
	}
	return d, true
}

// move publishes a partition's decisions in batches, committing past each
// batch once Kafka acknowledged it.
type move struct {
	src   Source
	dst   Publisher
	topic string
	// The batch being gathered: records of one partition, and the offset
	// after the last of them.
	records   []kafka.Record
	partition int32
	next      int64
}

func (m *move) add(ctx context.Context, d Decision) error {
	m.records = append(m.records, outgoing(d))
	m.partition, m.next = d.Record.Partition, d.Record.Offset+1
	if len(m.records) >= publishBatch {
		return m.flush(ctx)
	}
	return nil
}

func (m *move) flush(ctx context.Context) error {
	if len(m.records) == 0 {
		return nil
	}
	if err := m.dst.Publish(ctx, m.records); err != nil {
		return fmt.Errorf("publish %d records from %s/%d: %w", len(m.records), m.topic, m.partition, err)
	}
	if err := m.src.Commit(m.topic, m.partition, m.next); err != nil {
		return err
	}
	m.records = m.records[:0]
	return nil
}

// discard is the mover of a dry run.
type discard struct{}

func (discard) add(context.Context, Decision) error { return nil }
func (discard) flush(context.Context) error         { return nil }

// Stats describe what is waiting in a topic for the group.
type Stats struct {
	Depth int64
	// Oldest is the last failure time (dlq-failed-at) of the oldest waiting
	// record (zero when nothing waits).
	Oldest time.Time
}

// measureScan bounds how many records per partition Measure reads.
const measureScan = 1000

// Measure returns the depth and oldest waiting record of topic.
func Measure(ctx context.Context, src Reader, topic string) (Stats, error) {
	spans, err := src.Spans(topic)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	for _, span := range spans {
		if span.To <= span.From {
			continue
		}
		st.Depth += span.To - span.From
		// Records a filtered replay kept were re-appended behind newer
		// ones, so the first is not always the oldest: the first
		// measureScan records are looked at, a bound that keeps a tick
		// cheap when thousands are parked. Age counts from the last failure.
		seen := 0
		for msg, err := range src.Read(ctx, topic, span) {
			if err != nil {
				return Stats{}, err
			}
			r := RecordOf(msg)
			at := r.Letter.FailedAt
			if at.IsZero() {
				at = r.Timestamp
			}
			if st.Oldest.IsZero() || at.Before(st.Oldest) {
				st.Oldest = at
			}
			if seen++; seen >= measureScan {
				break
			}
		}
	}
	return st, nil
}

// List reads the waiting records of topic that f selects, up to limit (0:
// all), without publishing or committing anything.
func List(ctx context.Context, src Reader, topic string, f Filter, limit int, now time.Time, fn func(Record)) error {
	spans, err := src.Spans(topic)
	if err != nil {
		return err
	}
	n := 0
	for _, span := range spans {
		for msg, err := range src.Read(ctx, topic, span) {
			if err != nil {
				return err
			}
			r := RecordOf(msg)
			if !f.Match(r, now) {
				continue
			}
			fn(r)
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
	}
	return nil
}
