package verify

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/auditstream/auditstream/internal/integrity"
)

// maxProblems bounds the problems a CheckpointLog lists; the rest are
// counted.
const maxProblems = 100

// CheckpointLog is the sequence of signed checkpoints as the checkpoints
// topic holds it, which someone who can rewrite the database cannot
// change: each document is verified, repeats (a checkpoint published again
// after a crash) are recognised by id, each new id must follow the one
// before, and the latest head of every chain is kept as its anchor. It
// holds one anchor per chain and one hash per checkpoint in memory.
type CheckpointLog struct {
	signers      *integrity.PublicKeys
	since, until time.Time

	last     *integrity.SignedCheckpoint
	hashes   map[int64][]byte
	anchors  map[string]Anchor
	changed  map[string]bool
	matched  map[int64]bool
	problems []string
	more     int
}

// NewCheckpointLog reads checkpoints signed by signers; the chains whose
// heads a checkpoint of [since, until] records (a zero bound is open) are
// the changed ones.
func NewCheckpointLog(signers *integrity.PublicKeys, since, until time.Time) *CheckpointLog {
	return &CheckpointLog{signers: signers, since: since, until: until,
		hashes: map[int64][]byte{}, anchors: map[string]Anchor{}, changed: map[string]bool{}, matched: map[int64]bool{}}
}

func (l *CheckpointLog) problem(format string, args ...any) {
	if len(l.problems) < maxProblems {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	} else {
		l.more++
	}
}

// Add reads the next document of the topic (at where, for messages).
func (l *CheckpointLog) Add(doc []byte, where string) {
	c, err := integrity.ParseCheckpoint(doc)
	if err != nil {
		l.problem("%s: not a checkpoint: %v", where, err)
		return
	}
	if err := c.VerifyWith(l.signers); err != nil {
		l.problem("%s: %v", where, err)
		return
	}
	if prev, seen := l.hashes[c.ID]; seen {
		if !bytes.Equal(prev, c.Hash) {
			l.problem("%s: a second, different checkpoint %d: the topic was written by another signer of the same key", where, c.ID)
		}
		return
	}
	if err := c.VerifyNext(l.last); err != nil {
		l.problem("%s: %v (checkpoints were removed from the topic, or it was rewritten)", where, err)
	}
	l.last = c
	l.hashes[c.ID] = c.Hash
	inRange := (l.since.IsZero() || !c.Time.Before(l.since)) && (l.until.IsZero() || !c.Time.After(l.until))
	for _, h := range c.Heads {
		l.anchors[h.CorrelationID] = Anchor{CheckpointID: c.ID, Time: c.Time, Head: h.Head}
		if inRange {
			l.changed[h.CorrelationID] = true
		}
	}
}

// Anchor is the latest head the topic's checkpoints recorded for the chain
// (nil: none).
func (l *CheckpointLog) Anchor(correlationID string) *Anchor {
	a, ok := l.anchors[correlationID]
	if !ok {
		return nil
	}
	return &a
}

// Changed lists the chains that checkpoints of the range recorded, sorted.
func (l *CheckpointLog) Changed() []string { return slices.Sorted(maps.Keys(l.changed)) }

// Chains lists every chain the checkpoints recorded, sorted.
func (l *CheckpointLog) Chains() []string { return slices.Sorted(maps.Keys(l.anchors)) }

// Checkpoints counts the distinct checkpoints read.
func (l *CheckpointLog) Checkpoints() int { return len(l.hashes) }

// Last is the newest checkpoint read (nil: none).
func (l *CheckpointLog) Last() *integrity.SignedCheckpoint { return l.last }

// CompareStored holds one checkpoint as the database recorded it to the
// topic's: the same document, or, for one the database says Kafka has not
// acknowledged, absent.
func (l *CheckpointLog) CompareStored(id int64, doc []byte, published bool) {
	c, err := integrity.ParseCheckpoint(doc)
	hash, inTopic := l.hashes[id]
	switch {
	case err != nil:
		l.problem("checkpoint %d in integrity_checkpoints is not a checkpoint (%v): the record was changed", id, err)
	case !inTopic && published:
		l.problem("checkpoint %d is recorded as published but the topic does not hold it: it was removed from the topic, or this is another topic", id)
	case inTopic && !bytes.Equal(hash, c.Hash):
		l.problem("checkpoint %d in integrity_checkpoints differs from the topic's: the record was changed", id)
	}
	l.matched[id] = inTopic
}

// EndCompare, after CompareStored for every recorded checkpoint, reports
// the topic's checkpoints that the database lacks.
func (l *CheckpointLog) EndCompare() {
	for _, id := range slices.Sorted(maps.Keys(l.hashes)) {
		if _, ok := l.matched[id]; !ok {
			l.problem("checkpoint %d is in the topic but not in integrity_checkpoints: rows were deleted", id)
		}
	}
}

// Problems lists what is wrong with the checkpoints; more counts those
// not listed.
func (l *CheckpointLog) Problems() (problems []string, more int) { return l.problems, l.more }
