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
	// from there; whether the events before were removed by retention or
	// deleted is for the caller to tell.
	Truncated bool
}

// ChainVerifier checks one chain event by event, in constant memory: feed
// it the chain's events in chain_seq order with Check, then call Finish.
// After a break it carries on from the event as stored, so each later
// break is reported where it is.
type ChainVerifier struct {
	keys          *Keys
	correlationID string
	anchors       []Head
	summary       Summary
	prev          Head
}

// NewChainVerifier verifies the chain of correlationID. anchors are the
// heads of it that signed checkpoints recorded, in chain_seq order (nil
// when there are none): the events at those chain_seq must carry those
// hashes, and the chain must reach the last of them.
func (k *Keys) NewChainVerifier(correlationID string, anchors []Head) *ChainVerifier {
	return &ChainVerifier{keys: k, correlationID: correlationID, anchors: anchors}
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
	expected, err := v.keys.Recompute(e)
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
	case seq < want:
		b = brk(BreakOrder, nil, nil, "chain_seq %d follows chain_seq %d: repeated or out of order (an event inserted, or the order changed)", seq, v.prev.Seq)
	case seq > want:
		b = brk(BreakGap, nil, nil, "chain_seq %d follows chain_seq %d: %s missing (deleted)", seq, v.prev.Seq, seqRange(want, seq-1))
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
	if b == nil && !bytes.Equal(expected, e.EventHash) {
		b = brk(BreakAltered, expected, e.EventHash, "event_hash does not match the event's fields: a field or the hash was altered, or the event was forged without the key")
	}
	if a := v.anchor(seq); b == nil && a != nil && !bytes.Equal(a.Hash, e.EventHash) {
		b = brk(BreakCheckpoint, a.Hash, e.EventHash, "a signed checkpoint recorded another event_hash at chain_seq %d: the chain was rewritten after it", seq)
	}
	v.advance(e)
	return b
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
// a checkpointed chain_seq beyond the last event (BreakCut).
func (v *ChainVerifier) Finish() (Summary, []Break) {
	var breaks []Break
	for _, a := range v.anchors {
		if a.Seq > v.summary.LastSeq {
			breaks = append(breaks, Break{Kind: BreakCut, ChainSeq: a.Seq, Expected: a.Hash,
				Message: fmt.Sprintf("a signed checkpoint recorded chain_seq %d with event_hash %s, but the chain ends at chain_seq %d: the events after it were deleted",
					a.Seq, hex.EncodeToString(a.Hash), v.summary.LastSeq)})
			break // the last event before a cut is what the others would repeat
		}
	}
	return v.summary, breaks
}

func seqRange(from, to int64) string {
	if from == to {
		return fmt.Sprintf("chain_seq %d is", from)
	}
	return fmt.Sprintf("chain_seq %d to %d are", from, to)
}
