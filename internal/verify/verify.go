// Package verify checks stored hash chains (SPEC 9.3) against what
// anchors them: the writer's recorded head, what retention removed, and a
// signed checkpoint — the one the database names (the API's verify-chain)
// or the one the checkpoints topic holds (auditctl verify, CheckpointLog),
// which someone who can rewrite the database cannot change. It reads
// through internal/query and verifies with internal/integrity, in constant
// memory at any chain length.
package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/query"
)

// DefaultMaxBreaks bounds the breaks a result lists: the first one is what
// an investigation starts from, a hundred show the extent, and the rest
// are counted.
const DefaultMaxBreaks = 100

// chainReader reads a chain with its state from one snapshot
// (query.Reader).
type chainReader interface {
	ReadChain(ctx context.Context, correlationID string, state func(query.ChainState) error, fn func(*audit.Event) error) error
}

// Anchor is a chain's head as a signed checkpoint recorded it.
type Anchor struct {
	CheckpointID int64
	Time         time.Time
	integrity.Head
}

// Result is one chain's verification.
type Result struct {
	CorrelationID string
	integrity.ChainReport
	// Anchor is the checkpointed head the chain was held to; nil when no
	// checkpoint covers it yet (its events are then verified by their
	// hashes alone).
	Anchor *Anchor
	// Found: the database holds events of the chain or a record of it.
	Found bool
	// Hidden: an event of the chain is outside what Options.Visible
	// allows; the result holds nothing else.
	Hidden bool
	// At is when the verification finished.
	At time.Time
}

// Options adjust one chain's verification.
type Options struct {
	// Anchor, when set, is the head to hold the chain to instead of the
	// checkpoint the database names (auditctl takes it from the topic).
	Anchor *Anchor
	// UseAnchor makes Anchor the only source, even nil: the database's
	// checkpoint pointer is then not consulted.
	UseAnchor bool
	// Visible, when set, is asked about every event's namespace: a chain
	// with one event it refuses ends at once as Hidden (a credential
	// limited to namespaces verifies only chains wholly inside them).
	Visible func(namespace *string) bool
}

// Verifier verifies chains stored in PostgreSQL.
type Verifier struct {
	reader    chainReader
	keys      *integrity.Keys
	signers   *integrity.PublicKeys
	maxBreaks int
	now       func() time.Time
}

// New verifies with the HMAC keys of the chain and the public keys of the
// checkpoints (nil only with Options.UseAnchor), keeping maxBreaks breaks
// per chain (0: DefaultMaxBreaks).
func New(reader chainReader, keys *integrity.Keys, signers *integrity.PublicKeys, maxBreaks int) *Verifier {
	if maxBreaks <= 0 {
		maxBreaks = DefaultMaxBreaks
	}
	return &Verifier{reader: reader, keys: keys, signers: signers, maxBreaks: maxBreaks, now: time.Now}
}

var errHidden = errors.New("chain outside the visible namespaces")

// Chain verifies the chain of correlationID. Breaks are in the result; an
// error means the chain could not be read.
func (v *Verifier) Chain(ctx context.Context, correlationID string, opts Options) (Result, error) {
	res := Result{CorrelationID: correlationID, Anchor: opts.Anchor}
	var state query.ChainState
	var anchorBreak *integrity.Break
	verifier := v.keys.NewChainVerifier(correlationID, nil)
	report, err := verifier.Verify(func(fn func(*audit.Event) error) error {
		return v.reader.ReadChain(ctx, correlationID, func(s query.ChainState) error {
			state = s
			if !opts.UseAnchor && opts.Anchor == nil {
				res.Anchor, anchorBreak = v.storedAnchor(correlationID, s.Checkpoint)
			}
			if res.Anchor != nil {
				verifier.Anchored([]integrity.Head{res.Anchor.Head})
			}
			verifier.Retention(s.Dropped)
			if s.Head != nil {
				verifier.Reaches(*s.Head)
			}
			return nil
		}, func(e *audit.Event) error {
			if opts.Visible != nil && !opts.Visible(e.Namespace) {
				return errHidden
			}
			return fn(e)
		})
	}, v.maxBreaks)
	res.At = v.now().UTC()
	switch {
	case errors.Is(err, errHidden):
		return Result{CorrelationID: correlationID, Hidden: true, At: res.At}, nil
	case err != nil:
		return Result{}, fmt.Errorf("verify chain %q: %w", correlationID, err)
	}
	res.ChainReport = report
	if anchorBreak != nil {
		res.Breaks = append([]integrity.Break{*anchorBreak}, res.Breaks...)
		if len(res.Breaks) > v.maxBreaks {
			res.Breaks = res.Breaks[:v.maxBreaks]
			res.MoreBreaks++
		}
	}
	res.Found = report.Events > 0 || state.Head != nil || len(state.Dropped) > 0 || res.Anchor != nil
	return res, nil
}

// storedAnchor verifies the checkpoint the database names for the chain;
// one that does not verify or does not cover the chain is a break, since
// only a changed database names such a checkpoint.
func (v *Verifier) storedAnchor(correlationID string, c *query.Checkpoint) (*Anchor, *integrity.Break) {
	if c == nil {
		return nil, nil
	}
	brk := func(format string, args ...any) *integrity.Break {
		return &integrity.Break{Kind: integrity.BreakCheckpoint, Message: fmt.Sprintf(format, args...)}
	}
	cp, err := integrity.ParseCheckpoint(c.Document)
	if err != nil {
		return nil, brk("checkpoint %d as recorded in integrity_checkpoints cannot be read (%v): the record was changed", c.ID, err)
	}
	if err := cp.VerifyWith(v.signers); err != nil {
		return nil, brk("checkpoint %d as recorded in integrity_checkpoints does not verify (%v): the record was changed, or its signing key is not configured", c.ID, err)
	}
	head, ok := cp.HeadOf(correlationID)
	if !ok || cp.ID != c.ID {
		return nil, brk("checkpoint %d, which the chain's head names, does not record this chain: the database was changed", c.ID)
	}
	return &Anchor{CheckpointID: cp.ID, Time: cp.Time, Head: head}, nil
}
