package integrity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Checkpoint document identification: every document says what it is, so
// a verifier reading the audit.checkpoints topic or the
// integrity_checkpoints table needs nothing else.
const (
	CheckpointFormat  = "auditstream.checkpoint"
	CheckpointVersion = 1
	// SequenceGlobal: all writers publish into one sequence of ids, each
	// checkpoint naming the hash of the one before (the writer holds an
	// advisory lock while it takes the next id).
	SequenceGlobal = "global"
)

// MaxCheckpointBytes bounds one checkpoint document, well under Kafka's
// default 1 MB record limit; when more heads moved than fit, the writer
// publishes several checkpoints in a row (SplitHeads).
const MaxCheckpointBytes = 512 << 10

// Errors of SignedCheckpoint.Verify and VerifyNext.
var (
	ErrCheckpointKey       = errors.New("checkpoint signed by another key")
	ErrCheckpointSignature = errors.New("checkpoint signature does not verify")
	ErrCheckpointSequence  = errors.New("checkpoint does not follow the previous one")
)

// Checkpoint is the content of a signed checkpoint (SPEC 9.2): the heads of
// the chains that moved since the previous checkpoint, anchored outside
// the database.
type Checkpoint struct {
	ID   int64
	Time time.Time
	// Writer names the process that published it (informational).
	Writer string
	// PreviousHash is the Hash of checkpoint ID-1, nil for the first.
	PreviousHash []byte
	// Heads are sorted by correlation_id.
	Heads []CheckpointHead
}

// CheckpointHead is one chain's head as a checkpoint recorded it.
type CheckpointHead struct {
	CorrelationID string
	Head
}

// SignedCheckpoint is a checkpoint with its signature, as published.
type SignedCheckpoint struct {
	Checkpoint
	// Document is the JSON published to the topic and stored in the table.
	Document []byte
	// Hash is the SHA-256 of the signed bytes: what the next checkpoint's
	// PreviousHash must be.
	Hash []byte
	// KeyFingerprint names the public key that verifies the signature
	// (KeyFingerprint).
	KeyFingerprint string
	Signature      []byte
	// signed are the bytes the signature covers.
	signed []byte
}

// document is the JSON form. Signed are the canonical JSON bytes
// (AppendCanonicalJSON) of the document without its "signature" member.
type document struct {
	Format       string         `json:"format"`
	Version      int            `json:"version"`
	Sequence     string         `json:"sequence"`
	ID           int64          `json:"id"`
	Time         string         `json:"time"`
	Writer       string         `json:"writer"`
	PreviousHash string         `json:"previous_hash"`
	Heads        []documentHead `json:"heads"`
	PublicKey    string         `json:"public_key_sha256"`
	Signature    string         `json:"signature,omitempty"`
}

type documentHead struct {
	CorrelationID string `json:"correlation_id"`
	ChainSeq      int64  `json:"chain_seq"`
	EventHash     string `json:"event_hash"`
}

// SignCheckpoint signs c with s.
func SignCheckpoint(s *Signer, c Checkpoint) (*SignedCheckpoint, error) {
	doc := document{
		Format: CheckpointFormat, Version: CheckpointVersion, Sequence: SequenceGlobal,
		ID: c.ID, Time: c.Time.UTC().Format(timeLayout), Writer: c.Writer,
		PreviousHash: hex.EncodeToString(c.PreviousHash), Heads: make([]documentHead, len(c.Heads)),
		PublicKey: KeyFingerprint(s.PublicKey()),
	}
	for i, h := range c.Heads {
		doc.Heads[i] = documentHead{CorrelationID: h.CorrelationID, ChainSeq: h.Seq, EventHash: hex.EncodeToString(h.Hash)}
	}
	signed, err := signedBytes(doc)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	sig := s.Sign(signed)
	doc.Signature = base64.StdEncoding.EncodeToString(sig)
	published, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	sum := sha256.Sum256(signed)
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	return &SignedCheckpoint{Checkpoint: c, Document: published, Hash: sum[:], KeyFingerprint: doc.PublicKey,
		Signature: sig, signed: signed}, nil
}

// ParseCheckpoint reads a checkpoint document. It checks the format, not
// the signature: call Verify.
func ParseCheckpoint(data []byte) (*SignedCheckpoint, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var doc document
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if doc.Format != CheckpointFormat || doc.Version != CheckpointVersion {
		return nil, fmt.Errorf("checkpoint: format %q version %d, this build reads %s version %d", doc.Format, doc.Version, CheckpointFormat, CheckpointVersion)
	}
	if doc.Sequence != SequenceGlobal {
		return nil, fmt.Errorf("checkpoint: sequence %q, this build reads %q", doc.Sequence, SequenceGlobal)
	}
	c := &SignedCheckpoint{Document: data, KeyFingerprint: doc.PublicKey}
	var err error
	if c.Signature, err = base64.StdEncoding.DecodeString(doc.Signature); err != nil || len(c.Signature) != ed25519.SignatureSize {
		return nil, errors.New("checkpoint: signature is not a base64 Ed25519 signature")
	}
	c.ID = doc.ID
	if c.Time, err = time.Parse(time.RFC3339Nano, doc.Time); err != nil {
		return nil, fmt.Errorf("checkpoint: time: %w", err)
	}
	c.Writer = doc.Writer
	if c.PreviousHash, err = hex.DecodeString(doc.PreviousHash); err != nil {
		return nil, fmt.Errorf("checkpoint: previous_hash: %w", err)
	}
	if len(c.PreviousHash) == 0 {
		c.PreviousHash = nil
	}
	c.Heads = make([]CheckpointHead, len(doc.Heads))
	for i, h := range doc.Heads {
		hash, err := hex.DecodeString(h.EventHash)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: head %q: event_hash: %w", h.CorrelationID, err)
		}
		c.Heads[i] = CheckpointHead{CorrelationID: h.CorrelationID, Head: Head{Seq: h.ChainSeq, Hash: hash}}
	}
	delete(members, "signature")
	if c.signed, err = signedBytes(members); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	sum := sha256.Sum256(c.signed)
	c.Hash = sum[:]
	return c, nil
}

// signedBytes are what a checkpoint's signature covers: the canonical JSON
// of the document without its signature (doc has none).
func signedBytes(doc any) ([]byte, error) {
	unsigned, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return AppendCanonicalJSON(nil, unsigned)
}

// Verify checks the signature with pub.
func (c *SignedCheckpoint) Verify(pub ed25519.PublicKey) error {
	if c.KeyFingerprint != KeyFingerprint(pub) {
		return fmt.Errorf("%w: checkpoint %d names key %s, the key given is %s", ErrCheckpointKey, c.ID, c.KeyFingerprint, KeyFingerprint(pub))
	}
	if !ed25519.Verify(pub, c.signed, c.Signature) {
		return fmt.Errorf("%w: checkpoint %d", ErrCheckpointSignature, c.ID)
	}
	return nil
}

// VerifyWith checks the signature with the key of keys it names.
func (c *SignedCheckpoint) VerifyWith(keys *PublicKeys) error {
	pub, ok := keys.Lookup(c.KeyFingerprint)
	if !ok {
		return fmt.Errorf("%w: checkpoint %d names key %s, not one of %s", ErrCheckpointKey, c.ID, c.KeyFingerprint,
			strings.Join(keys.Fingerprints(), ", "))
	}
	return c.Verify(pub)
}

// HeadOf returns the head c recorded for correlationID (Heads are sorted
// by correlation_id, bytewise).
func (c *SignedCheckpoint) HeadOf(correlationID string) (Head, bool) {
	i, ok := slices.BinarySearchFunc(c.Heads, correlationID, func(h CheckpointHead, id string) int {
		return strings.Compare(h.CorrelationID, id)
	})
	if !ok {
		return Head{}, false
	}
	return c.Heads[i].Head, true
}

// VerifyNext checks that c directly follows prev in the sequence: the next
// id, naming prev's hash. prev nil means c must be the first.
func (c *SignedCheckpoint) VerifyNext(prev *SignedCheckpoint) error {
	if prev == nil {
		if c.ID != 1 || c.PreviousHash != nil {
			return fmt.Errorf("%w: checkpoint %d has no predecessor to follow", ErrCheckpointSequence, c.ID)
		}
		return nil
	}
	if c.ID != prev.ID+1 || !bytes.Equal(c.PreviousHash, prev.Hash) {
		return fmt.Errorf("%w: checkpoint %d (previous_hash %x) after checkpoint %d (hash %x)", ErrCheckpointSequence,
			c.ID, c.PreviousHash, prev.ID, prev.Hash)
	}
	return nil
}

// SplitHeads cuts heads (sorted by correlation_id) into runs whose
// checkpoint documents stay under MaxCheckpointBytes.
func SplitHeads(heads []CheckpointHead) [][]CheckpointHead {
	// The rest of a document is under 600 bytes; a head is its quoted id
	// (at most 6 bytes a character once escaped) and about 140 more.
	const fixed = 1024
	var runs [][]CheckpointHead
	start, size := 0, fixed
	for i, h := range heads {
		n := 6*len(h.CorrelationID) + 160
		if size+n > MaxCheckpointBytes && i > start {
			runs = append(runs, heads[start:i])
			start, size = i, fixed
		}
		size += n
	}
	if start < len(heads) {
		runs = append(runs, heads[start:])
	}
	return runs
}

// SignCheckpoints covers heads (sorted by correlation_id) with as many
// checkpoints as their size needs (SplitHeads), following the checkpoint
// prevID whose hash is prevHash (0 and nil before the first): ids
// prevID+1, +2, ..., each naming the hash of the one before.
func SignCheckpoints(s *Signer, writer string, at time.Time, prevID int64, prevHash []byte, heads []CheckpointHead) ([]*SignedCheckpoint, error) {
	var out []*SignedCheckpoint
	for _, run := range SplitHeads(heads) {
		c, err := SignCheckpoint(s, Checkpoint{ID: prevID + 1, Time: at, Writer: writer, PreviousHash: prevHash, Heads: run})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		prevID, prevHash = c.ID, c.Hash
	}
	return out, nil
}
