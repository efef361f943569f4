package integrity

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/keyring"
)

// Keys are the HMAC keys of the chain (INTEGRITY_KEYS_FILE, the format of
// internal/keyring): the last one links new events, every one verifies,
// so rotation is adding a key.
type Keys struct {
	ring *keyring.Ring
}

// LoadKeys reads the key file at path.
func LoadKeys(path string) (*Keys, error) {
	ring, err := keyring.Load(path)
	if err != nil {
		return nil, fmt.Errorf("integrity keys: %w", err)
	}
	return NewKeys(ring), nil
}

// NewKeys uses ring's signing key for new links and all its keys to verify.
func NewKeys(ring *keyring.Ring) *Keys { return &Keys{ring: ring} }

// SigningKeyID is the id of the key new events are linked with.
func (k *Keys) SigningKeyID() string { return k.ring.Signing().ID }

// KeyIDs lists the loaded key ids, for logs.
func (k *Keys) KeyIDs() []string { return k.ring.IDs() }

// Head is the last link of a chain: its chain_seq and event_hash. The zero
// Head is a chain without events, which the first event follows with
// chain_seq 1 and an empty previous_event_hash.
type Head struct {
	Seq  int64
	Hash []byte
}

// EventHash returns HMAC-SHA256(secret, previous ‖ canonical), the
// event_hash of an event whose canonical form is canonical.
func EventHash(secret, previous, canonical []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(previous)
	m.Write(canonical)
	return m.Sum(nil)
}

// Linker links events to their chains with the signing key. It reuses its
// buffers: one per goroutine.
type Linker struct {
	key keyring.Key
	mac hash.Hash
	buf []byte
	// Every event linked shares the one key id and version, and takes its
	// chain_seq and event_hash from slabs: four small allocations per
	// event took about a tenth of Link's time (BenchmarkLink).
	keyID   string
	version int16
	seqs    []int64
	hashes  []byte
}

// linkSlab is how many events' chain_seq and event_hash one allocation
// holds.
const linkSlab = 512

// noPrevious is the previous_event_hash of a chain's first event: empty,
// never nil. Shared; an append to it cannot write into it, its capacity
// being 0.
var noPrevious = []byte{}

// Linker returns a Linker with the current signing key.
func (k *Keys) Linker() *Linker {
	key := k.ring.Signing()
	return &Linker{key: key, mac: hmac.New(sha256.New, key.Secret), keyID: key.ID, version: HashVersion}
}

// Link makes e the event after head: it sets e's chain_seq,
// previous_event_hash, hash_key_id and hash_version, then event_hash over
// them and the rest of e, and returns the chain's new head. The values are
// shared with the Linker and the head: read them, never write through
// them. The only error is event_data that is not canonicalisable JSON
// (ErrJSON): such an event cannot be stored either, since jsonb would
// refuse it too.
func (l *Linker) Link(e *audit.Event, head Head) (Head, error) {
	if len(l.seqs) == cap(l.seqs) {
		l.seqs = make([]int64, 0, linkSlab)
	}
	l.seqs = append(l.seqs, head.Seq+1)
	e.ChainSeq, e.HashKeyID, e.HashVersion = &l.seqs[len(l.seqs)-1], &l.keyID, &l.version
	e.PreviousEventHash = head.Hash
	if e.PreviousEventHash == nil {
		e.PreviousEventHash = noPrevious
	}
	var err error
	if l.buf, err = AppendCanonical(l.buf[:0], e); err != nil {
		e.ChainSeq, e.PreviousEventHash, e.HashKeyID, e.HashVersion, e.EventHash = nil, nil, nil, nil, nil
		return Head{}, err
	}
	l.mac.Reset()
	l.mac.Write(e.PreviousEventHash)
	l.mac.Write(l.buf)
	if cap(l.hashes)-len(l.hashes) < sha256.Size {
		l.hashes = make([]byte, 0, linkSlab*sha256.Size)
	}
	from := len(l.hashes)
	l.hashes = l.mac.Sum(l.hashes)
	e.EventHash = l.hashes[from:len(l.hashes):len(l.hashes)]
	return Head{Seq: *e.ChainSeq, Hash: e.EventHash}, nil
}

// Recompute returns the event_hash that e's stored fields call for, with
// the key named by its hash_key_id; the verifier compares it with e's
// event_hash. It fails for an event without a chain, of another
// hash_version, or naming a key that is not loaded.
func (k *Keys) Recompute(e *audit.Event) ([]byte, error) {
	switch {
	case e.ChainSeq == nil || e.EventHash == nil || e.PreviousEventHash == nil || e.HashKeyID == nil || e.HashVersion == nil:
		return nil, ErrUnchained
	case *e.HashVersion != HashVersion:
		return nil, fmt.Errorf("%w: hash_version %d (this build knows %d)", ErrVersion, *e.HashVersion, HashVersion)
	}
	secret, ok := k.ring.Secret(*e.HashKeyID)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not in INTEGRITY_KEYS_FILE", ErrUnknownKey, *e.HashKeyID)
	}
	canonical, err := AppendCanonical(nil, e)
	if err != nil {
		return nil, err
	}
	return EventHash(secret, e.PreviousEventHash, canonical), nil
}
