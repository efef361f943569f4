package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

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
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []*sarama.RecordHeader
	Letter    Letter
	// Enveloped is false when the dlq-original-* headers are missing or
	// malformed (a record a producer wrote to the DLQ by hand): it cannot
	// be sent back, since nobody knows where it came from.
	Enveloped bool
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

// Source reads a topic from the group's committed offsets up to the
// high-water marks taken when the read starts, and commits new positions.
type Source struct {
	client   sarama.Client
	admin    sarama.ClusterAdmin
	consumer sarama.Consumer
	group    string
}

// NewSource reads and commits as consumer group group on client.
func NewSource(client sarama.Client, group string) (*Source, error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("cluster admin: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return &Source{client: client, admin: admin, consumer: consumer, group: group}, nil
}

// Close releases the consumer (the client belongs to the caller).
func (s *Source) Close() error { return s.consumer.Close() }

// Span is the part of one partition a pass reads: [From, To).
type Span struct {
	Partition int32
	From, To  int64
}

// Spans returns, per partition of topic, the records not yet committed by
// the group: from the committed offset (or the oldest record) to the
// high-water mark now.
func (s *Source) Spans(topic string) ([]Span, error) {
	if err := s.client.RefreshMetadata(topic); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	partitions, err := s.client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	committed, err := s.admin.ListConsumerGroupOffsets(s.group, map[string][]int32{topic: partitions})
	// A group that never committed is not an error: everything waits.
	if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		return nil, fmt.Errorf("committed offsets of %s: %w", s.group, err)
	}
	spans := make([]Span, 0, len(partitions))
	for _, p := range partitions {
		oldest, err := s.client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("oldest offset of %s/%d: %w", topic, p, err)
		}
		newest, err := s.client.GetOffset(topic, p, sarama.OffsetNewest)
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

// Read calls fn for each record of the span, in offset order, until fn
// returns false or an error.
func (s *Source) Read(ctx context.Context, topic string, span Span, fn func(Record) (bool, error)) error {
	if span.From >= span.To {
		return nil
	}
	pc, err := s.consumer.ConsumePartition(topic, span.Partition, span.From)
	if err != nil {
		return fmt.Errorf("read %s/%d from %d: %w", topic, span.Partition, span.From, err)
	}
	// Close, not AsyncClose: the partition consumer is deregistered only
	// once it has shut down, and reading the same partition again before
	// that (Measure after Pass, inspect after list) fails with "That
	// topic/partition is already being consumed".
	defer func() { _ = pc.Close() }()
	// The records before To may end in offsets that hold no data record
	// (transaction markers, compacted records): when nothing arrives for
	// readIdle the span is taken as read. A pass commits only up to the last
	// record it saw, so ending early only leaves the rest for the next pass.
	idle := time.NewTimer(readIdle)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return nil
		case cerr, ok := <-pc.Errors():
			if ok {
				return fmt.Errorf("read %s/%d: %w", topic, span.Partition, cerr.Err)
			}
		case msg, ok := <-pc.Messages():
			if !ok {
				return fmt.Errorf("read %s/%d: consumer closed", topic, span.Partition)
			}
			if msg.Offset >= span.To {
				return nil
			}
			letter, ok := Parse(msg.Headers)
			more, err := fn(Record{
				Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, Timestamp: msg.Timestamp,
				Key: msg.Key, Value: msg.Value, Headers: msg.Headers, Letter: letter, Enveloped: ok,
			})
			if err != nil || !more || msg.Offset+1 >= span.To {
				return err
			}
			idle.Reset(readIdle)
		}
	}
}

// readIdle is how long Read waits for the next record before it takes the
// span as read; far above a fetch from a live broker.
const readIdle = 5 * time.Second

// Commit records that the group has handled topic/partition up to (not
// including) offset.
func (s *Source) Commit(topic string, partition int32, offset int64) error {
	res, err := s.admin.AlterConsumerGroupOffsets(s.group, map[string]map[int32]sarama.OffsetAndMetadata{
		topic: {partition: {Offset: offset}},
	}, nil)
	if err != nil {
		return fmt.Errorf("commit %s/%d@%d: %w", topic, partition, offset, err)
	}
	if kerr := res.Errors[topic][partition]; kerr != sarama.ErrNoError {
		return fmt.Errorf("commit %s/%d@%d: %w", topic, partition, offset, kerr)
	}
	return nil
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
	headers := make([]sarama.RecordHeader, 0, len(d.Record.Headers))
	if d.Action == ActionReplay {
		l := d.Record.Letter
		l.Attempts++
		headers = l.Headers(d.Record.Headers)
	} else {
		for _, h := range d.Record.Headers {
			headers = append(headers, sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
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
func Pass(ctx context.Context, src *Source, pub Publisher, o Options, decided func(Decision)) (Summary, error) {
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
		err := src.Read(ctx, o.From, span, func(r Record) (bool, error) {
			d := Decide(r, o, now())
			if d.Action != ActionKeep {
				if o.Limit > 0 && selected >= o.Limit {
					limitHit = true
					return false, nil
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
				return true, nil
			}
			batch = append(batch, outgoing(d))
			if len(batch) >= 500 {
				return true, flush()
			}
			return true, nil
		})
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
func Measure(ctx context.Context, src *Source, topic string) (Stats, error) {
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
		err := src.Read(ctx, topic, span, func(r Record) (bool, error) {
			at := r.Letter.FailedAt
			if at.IsZero() {
				at = r.Timestamp
			}
			if st.Oldest.IsZero() || at.Before(st.Oldest) {
				st.Oldest = at
			}
			seen++
			return seen < measureScan, nil
		})
		if err != nil {
			return Stats{}, err
		}
	}
	return st, nil
}

// ErrNotFound is returned by Get for an offset with no record.
var ErrNotFound = errors.New("no record at that offset")

// Get reads the record at topic/partition@offset.
func Get(ctx context.Context, src *Source, topic string, partition int32, offset int64) (Record, error) {
	// A consumer started at the high-water mark waits for the next record
	// to be written: an offset at or past the end is answered at once.
	newest, err := src.client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		return Record{}, fmt.Errorf("newest offset of %s/%d: %w", topic, partition, err)
	}
	if offset < 0 || offset >= newest {
		return Record{}, fmt.Errorf("%s/%d@%d: %w (the partition ends at %d)", topic, partition, offset, ErrNotFound, newest)
	}
	var found *Record
	err = src.Read(ctx, topic, Span{Partition: partition, From: offset, To: offset + 1}, func(r Record) (bool, error) {
		if r.Offset == offset {
			found = &r
		}
		return false, nil
	})
	if err != nil {
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			return Record{}, fmt.Errorf("%s/%d@%d: %w", topic, partition, offset, ErrNotFound)
		}
		return Record{}, err
	}
	if found == nil {
		return Record{}, fmt.Errorf("%s/%d@%d: %w", topic, partition, offset, ErrNotFound)
	}
	return *found, nil
}

// List reads the waiting records of topic that f selects, up to limit (0:
// all), without publishing or committing anything.
func List(ctx context.Context, src *Source, topic string, f Filter, limit int, now time.Time, fn func(Record)) error {
	spans, err := src.Spans(topic)
	if err != nil {
		return err
	}
	n := 0
	for _, span := range spans {
		err := src.Read(ctx, topic, span, func(r Record) (bool, error) {
			if !f.Match(r, now) {
				return true, nil
			}
			fn(r)
			n++
			return limit == 0 || n < limit, nil
		})
		if err != nil {
			return err
		}
		if limit > 0 && n >= limit {
			return nil
		}
	}
	return nil
}
