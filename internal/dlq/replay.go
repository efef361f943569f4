package dlq

import (
	"context"
	"fmt"
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
	case f.ErrorClass != "" && r.Letter.Class != f.ErrorClass,
		f.OriginalTopic != "" && r.Letter.OriginalTopic != f.OriginalTopic,
		f.Key != "" && string(r.Key) != f.Key,
		f.OlderThan > 0 && age < f.OlderThan,
		f.NewerThan > 0 && age > f.NewerThan,
		!f.Before.IsZero() && !r.Timestamp.Before(f.Before):
		return false
	}
	return true
}

// Publisher returns once Kafka has acknowledged every record.
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
	// DryRun decides and reports, but publishes and commits nothing.
	DryRun bool
	// Progress, if set, is called after each record with the running totals.
	Progress func(Summary)
	Now      func() time.Time
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
	if !fromParked && r.Letter.Attempts >= o.MaxAttempts {
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

// Pass moves the records present in o.From when it starts: selected ones
// back to their original topic (or to the parked topic once they used up
// their replays), the others re-appended to o.From. Each partition's
// records are published and acknowledged before its offset is committed,
// so a crash mid-pass loses nothing; records published twice are absorbed
// by the writer's de-duplication. decided is called for every decision,
// also in a dry run.
func Pass(ctx context.Context, src *kafka.Reader, pub Publisher, o Options, decided func(Decision)) (Summary, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	spans, err := src.Spans(o.From)
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	selected := 0
	for _, span := range spans {
		var batch []kafka.Record
		next := span.From
		flush := func() error {
			if o.DryRun || next == span.From {
				return nil
			}
			if err := pub.Publish(ctx, batch); err != nil {
				return fmt.Errorf("publish %d records from %s/%d: %w", len(batch), o.From, span.Partition, err)
			}
			if err := src.Commit(o.From, span.Partition, next); err != nil {
				return err
			}
			batch, span.From = batch[:0], next
			return nil
		}
		limitHit := false
		var err error
		for msg, rerr := range src.Read(ctx, o.From, span) {
			if rerr != nil {
				err = rerr
				break
			}
			r := RecordOf(msg)
			d := Decide(r, o, now())
			if d.Action != ActionKeep {
				if o.Limit > 0 && selected >= o.Limit {
					limitHit = true
					break
				}
				selected++
			}
			sum.Read++
			switch d.Action {
			case ActionReplay:
				sum.Replayed++
			case ActionPark:
				sum.Parked++
			case ActionKeep:
				sum.Kept++
			}
			if decided != nil {
				decided(d)
			}
			if o.Progress != nil {
				o.Progress(sum)
			}
			next = r.Offset + 1
			if o.DryRun {
				continue
			}
			batch = append(batch, outgoing(d))
			if len(batch) >= 500 {
				if err = flush(); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = flush()
		}
		if err != nil {
			return sum, err
		}
		if limitHit {
			break
		}
	}
	return sum, nil
}

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
func Measure(ctx context.Context, src *kafka.Reader, topic string) (Stats, error) {
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
func List(ctx context.Context, src *kafka.Reader, topic string, f Filter, limit int, now time.Time, fn func(Record)) error {
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
