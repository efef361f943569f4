package integrity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
)

// Errors of Keys.Recompute, also the causes a Break names.
var (
	ErrUnchained  = errors.New("the event has no hash chain fields")
	ErrVersion    = errors.New("unknown hash_version")
	ErrUnknownKey = errors.New("unknown hash key")
)

// BreakKind says how a chain is broken; the values are stable names for
// responses and metrics.
type BreakKind string

const (
	// BreakAltered: the event's stored fields do not give its event_hash:
	// a field (or the hash) was changed, or the event was forged without
	// the key.
	BreakAltered BreakKind = "altered"
	// BreakLink: previous_event_hash is not the event_hash of the event
	// before it: an event before it was inserted, removed, or its
	// chain_seq changed.
	BreakLink BreakKind = "link"
	// BreakGap: chain_seq skips values: the events in between were
	// deleted.
	BreakGap BreakKind = "gap"
	// BreakOrder: chain_seq repeats or goes back: an event was inserted
	// with a chain_seq already taken, or the order was changed.
	BreakOrder BreakKind = "order"
	// BreakUnchained: the event has no chain fields, or those of another
	// chain (its correlation_id differs).
	BreakUnchained BreakKind = "unchained"
	// BreakKey: the event names a key that is not loaded, or a
	// hash_version this build does not know, so it cannot be checked.
	BreakKey BreakKind = "unverifiable"
	// BreakCheckpoint: a signed checkpoint recorded another event_hash at
	// this chain_seq: the chain was rewritten after the checkpoint, even
	// if with the right key.
	BreakCheckpoint BreakKind = "checkpoint"
	// BreakCut: a signed checkpoint recorded a chain_seq beyond the last
	// event: events after it were deleted.
	BreakCut BreakKind = "cut"
)

// Break is where a chain breaks.
type Break struct {
	Kind BreakKind
	// EventID and ChainSeq locate the event the break shows at; for a
	// BreakCut, EventID is uuid.Nil and ChainSeq the checkpointed one.
	EventID  uuid.UUID
	ChainSeq int64
	// Expected is the hash the chain calls for there, Actual the one
	// stored (both nil when they do not apply).
	Expected, Actual []byte
	Message          string
}

// Summary is what a verification saw.
type Summary struct {
	// Events counts the events checked, Verified those without a break.
	Events, Verified int64
	// FirstSeq and LastSeq are the chain_seq of the first and last event
	// (0 without events).
	FirstSeq, LastSeq int64
	// Truncated: the first event is not chain_seq 1. The chain is checked
	// from there. Without Retention, whether the events before were
	// removed by retention or deleted is for the caller to tell; with it,
	// an unexplained missing start is a BreakGap.
	Truncated bool
	// Dropped counts the missing chain_seq values that retention explains
	// (Retention): removed by the policy, not tampered with.
	Dropped int64
	// Skipped counts the chain_seq values missing between the events of a
	// Subset, which verification cannot judge.
	Skipped int64
}

// Dropped is what retention removed from one chain with one partition, as
// the database records it: Events events, each with a chain_seq in
// [MinSeq, MaxSeq]. Retention drops by time while a chain numbers events
// in storage order, so the range may hold events that were not dropped:
// the count is what keeps a deletion inside it from hiding behind it.
type Dropped struct {
	MinSeq, MaxSeq, Events int64
}

// ChainVerifier checks one chain event by event, in constant memory: feed
// it the chain's events in chain_seq order with Check, then call Finish.
// After a break it carries on from the event as stored, so each later
// break is reported where it is.
type ChainVerifier struct {
	// keys is nil for a link verifier (NewLinkVerifier).
	keys          *Keys
	correlationID string
	anchors       []Head
	summary       Summary
	prev          Head

	subset bool
	// retention is set by Retention; dropped is the events it removed.
	retention bool
	dropped   []Dropped
	droppable int64
	// reach is the head recorded apart from the events (Reaches), 0 when
	// none is known.
	reach int64
}

// NewChainVerifier verifies the chain of correlationID. anchors are the
// heads of it that signed checkpoints recorded, in chain_seq order (nil
// when there are none): the events at those chain_seq must carry those
// hashes, and the chain must reach the last of them.
func (k *Keys) NewChainVerifier(correlationID string, anchors []Head) *ChainVerifier {
	return &ChainVerifier{keys: k, correlationID: correlationID, anchors: anchors}
}

// NewLinkVerifier checks what can be checked without the HMAC keys: that
// each event carries chain fields, that chain_seq goes up by one, and that
// each previous_event_hash is the event_hash before it (chain_seq 1's
// empty). An event altered with its hash left alone, or forged, passes:
// it is the check of a verifier who holds only a public key
// (auditctl verify-export without --integrity-keys), not a replacement for
// the keyed one.
func NewLinkVerifier(correlationID string) *ChainVerifier {
	return &ChainVerifier{correlationID: correlationID}
}

// Anchored replaces the anchors given to NewChainVerifier, for a caller
// that learns them only once it reads the chain (in its snapshot); call it
// before the first Check.
func (v *ChainVerifier) Anchored(anchors []Head) *ChainVerifier {
	v.anchors = anchors
	return v
}

// Subset says that the events are some of the chain's, not all (a
// filtered export): a chain_seq skipped between two of them is counted in
// Summary.Skipped, not reported, and the event after it is linked to the
// previous_event_hash it carries. Everything else is checked as usual.
func (v *ChainVerifier) Subset() *ChainVerifier {
	v.subset = true
	return v
}

// Retention gives what retention removed from the chain (nil or empty:
// nothing). Missing chain_seq values inside those ranges, up to the number
// of events they held, count as Summary.Dropped; any other missing one,
// the chain's start included, is a BreakGap, and so is a checkpointed
// chain_seq beyond the last event unless retention removed it.
func (v *ChainVerifier) Retention(dropped []Dropped) *ChainVerifier {
	v.retention, v.dropped, v.droppable = true, dropped, 0
	for _, d := range dropped {
		v.droppable += d.Events
	}
	return v
}

// Reaches gives the chain's head as recorded apart from its events (the
// writer's chain_heads row): the chain must reach its chain_seq, so that
// events deleted from the end since the last checkpoint are a BreakCut
// too. The record is unsigned: it catches a careless deletion, while only
// a checkpoint holds against someone who can rewrite the whole database.
func (v *ChainVerifier) Reaches(h Head) *ChainVerifier {
	v.reach = h.Seq
	return v
}

// Check verifies the next event of the chain; nil means it is sound.
func (v *ChainVerifier) Check(e *audit.Event) *Break {
	v.summary.Events++
	b := v.check(e)
	if b == nil {
		v.summary.Verified++
	}
	return b
}

func (v *ChainVerifier) check(e *audit.Event) *Break {
	brk := func(kind BreakKind, expected, actual []byte, format string, args ...any) *Break {
		b := &Break{Kind: kind, EventID: e.EventID, Expected: expected, Actual: actual, Message: fmt.Sprintf(format, args...)}
		if e.ChainSeq != nil {
			b.ChainSeq = *e.ChainSeq
		}
		return b
	}
	if e.CorrelationID != v.correlationID {
		return brk(BreakUnchained, nil, nil, "event belongs to correlation_id %q, not to this chain", e.CorrelationID)
	}
	expected, err := v.recompute(e)
	switch {
	case errors.Is(err, ErrUnchained):
		return brk(BreakUnchained, nil, e.EventHash, "%v: it was stored without a chain, or its chain fields were erased", err)
	case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrVersion):
		v.advance(e)
		return brk(BreakKey, nil, e.EventHash, "cannot be verified: %v", err)
	case err != nil:
		v.advance(e)
		return brk(BreakAltered, nil, e.EventHash, "stored fields cannot be encoded (%v): altered", err)
	}
	seq := *e.ChainSeq
	first := v.summary.FirstSeq == 0
	want := v.prev.Seq + 1
	var b *Break
	switch {
	case first && seq < 1:
		b = brk(BreakOrder, nil, nil, "chain_seq %d: chains start at 1", seq)
	case first && seq > 1:
		// Verified from here: the previous hash is taken as stored.
		v.summary.Truncated = true
		if !v.explained(1, seq-1, true) {
			b = brk(BreakGap, nil, nil, "the chain starts at chain_seq %d: %s missing (deleted)%s", seq, seqRange(1, seq-1), v.unexplained())
		}
	case seq < want:
		b = brk(BreakOrder, nil, nil, "chain_seq %d follows chain_seq %d: repeated or out of order (an event inserted, or the order changed)", seq, v.prev.Seq)
	case seq > want:
		if !v.explained(want, seq-1, false) {
			b = brk(BreakGap, nil, nil, "chain_seq %d follows chain_seq %d: %s missing (deleted)%s", seq, v.prev.Seq, seqRange(want, seq-1), v.unexplained())
		}
	case !bytes.Equal(e.PreviousEventHash, v.prev.Hash):
		b = brk(BreakLink, v.prev.Hash, e.PreviousEventHash,
			"previous_event_hash is not the event_hash of chain_seq %d: an event before it was inserted, removed or moved", v.prev.Seq)
	}
	if first {
		v.summary.FirstSeq = seq
		if seq == 1 && len(e.PreviousEventHash) != 0 && b == nil {
			b = brk(BreakLink, []byte{}, e.PreviousEventHash, "chain_seq 1 must have an empty previous_event_hash")
		}
	}
	if b == nil && v.keys != nil && !bytes.Equal(expected, e.EventHash) {
		b = brk(BreakAltered, expected, e.EventHash, "event_hash does not match the event's fields: a field or the hash was altered, or the event was forged without the key")
	}
	if a := v.anchor(seq); b == nil && a != nil && !bytes.Equal(a.Hash, e.EventHash) {
		b = brk(BreakCheckpoint, a.Hash, e.EventHash, "a signed checkpoint recorded another event_hash at chain_seq %d: the chain was rewritten after it", seq)
	}
	v.advance(e)
	return b
}

// recompute returns the event_hash e calls for; a link verifier computes
// none and only requires the chain fields.
func (v *ChainVerifier) recompute(e *audit.Event) ([]byte, error) {
	if v.keys != nil {
		return v.keys.Recompute(e)
	}
	if e.ChainSeq == nil || e.EventHash == nil || e.PreviousEventHash == nil || e.HashKeyID == nil || e.HashVersion == nil {
		return nil, ErrUnchained
	}
	return nil, nil
}

// explained reports whether the missing chain_seq from..to are no break:
// skipped in a Subset, removed by Retention, or, without Retention, the
// missing start of a chain (Truncated, for the caller to tell). Those
// retention explains are added to Summary.Dropped.
func (v *ChainVerifier) explained(from, to int64, start bool) bool {
	n := to - from + 1
	switch {
	case v.subset:
		v.summary.Skipped += n
		return true
	case !v.retention:
		return start
	case v.summary.Dropped+n <= v.droppable && covered(v.dropped, from, to):
		v.summary.Dropped += n
		return true
	}
	return false
}

// unexplained completes a gap's message once Retention is known.
func (v *ChainVerifier) unexplained() string {
	if !v.retention {
		return ""
	}
	if v.droppable == 0 {
		return "; no retention drop removed events of this chain"
	}
	return fmt.Sprintf("; retention removed %d event(s) of this chain, which do not account for them", v.droppable)
}

// covered reports whether every chain_seq from..to lies in one of the
// ranges.
func covered(dropped []Dropped, from, to int64) bool {
	for from <= to {
		next := from
		for _, d := range dropped {
			if d.MinSeq <= from && from <= d.MaxSeq {
				next = max(next, d.MaxSeq+1)
			}
		}
		if next == from {
			return false
		}
		from = next
	}
	return true
}

// anchor returns the checkpointed head at seq, dropping those before it.
func (v *ChainVerifier) anchor(seq int64) *Head {
	for len(v.anchors) > 0 && v.anchors[0].Seq < seq {
		v.anchors = v.anchors[1:]
	}
	if len(v.anchors) > 0 && v.anchors[0].Seq == seq {
		return &v.anchors[0]
	}
	return nil
}

// advance makes e the head the next event must follow.
func (v *ChainVerifier) advance(e *audit.Event) {
	if e.ChainSeq == nil {
		return
	}
	v.prev = Head{Seq: *e.ChainSeq, Hash: e.EventHash}
	v.summary.LastSeq = *e.ChainSeq
	if v.summary.FirstSeq == 0 {
		v.summary.FirstSeq = *e.ChainSeq
	}
}

// Finish reports what the chain held and the breaks only its end shows:
// a checkpointed chain_seq, or the recorded head (Reaches), beyond the
// last event (BreakCut), unless retention removed the events after it.
func (v *ChainVerifier) Finish() (Summary, []Break) {
	last := v.summary.LastSeq
	var anchor *Head
	for i := range v.anchors {
		if v.anchors[i].Seq > last {
			anchor = &v.anchors[i] // the others would repeat the cut
			break
		}
	}
	end := v.reach
	if anchor != nil {
		end = max(end, anchor.Seq)
	}
	if end <= last || v.explained(last+1, end, false) {
		return v.summary, nil
	}
	if anchor == nil {
		return v.summary, []Break{{Kind: BreakCut, ChainSeq: v.reach,
			Message: fmt.Sprintf("the chain's recorded head is chain_seq %d, but the chain ends at chain_seq %d: the events after it were deleted%s",
				v.reach, last, v.unexplained())}}
	}
	return v.summary, []Break{{Kind: BreakCut, ChainSeq: anchor.Seq, Expected: anchor.Hash,
		Message: fmt.Sprintf("a signed checkpoint recorded chain_seq %d with event_hash %s, but the chain ends at chain_seq %d: the events after it were deleted%s",
			anchor.Seq, hex.EncodeToString(anchor.Hash), last, v.unexplained())}}
}

// ChainReport is the outcome of a chain's verification.
type ChainReport struct {
	Summary
	// Breaks are the first breaks, in chain order; MoreBreaks counts those
	// found after them.
	Breaks     []Break
	MoreBreaks int64
}

// Valid reports a chain without a break.
func (r *ChainReport) Valid() bool { return len(r.Breaks) == 0 }

// Verify checks the chain that each hands over, one event at a time in
// chain_seq order (query.Reader.Chain's shape), and finishes. It keeps the
// first maxBreaks breaks (at least one) and counts the rest, so memory
// stays constant at any chain length. An error of each is returned as it
// is, with what was verified until then.
func (v *ChainVerifier) Verify(each func(fn func(*audit.Event) error) error, maxBreaks int) (ChainReport, error) {
	maxBreaks = max(maxBreaks, 1)
	var r ChainReport
	keep := func(b *Break) {
		if len(r.Breaks) < maxBreaks {
			r.Breaks = append(r.Breaks, *b)
		} else {
			r.MoreBreaks++
		}
	}
	err := each(func(e *audit.Event) error {
		if b := v.Check(e); b != nil {
			keep(b)
		}
		return nil
	})
	summary, end := v.Finish()
	for i := range end {
		keep(&end[i])
	}
	r.Summary = summary
	return r, err
}

func seqRange(from, to int64) string {
	if from == to {
		return fmt.Sprintf("chain_seq %d is", from)
	}
	return fmt.Sprintf("chain_seq %d to %d are", from, to)
}
