package integrity

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
)

// Export formats (SPEC 9.4) and what their signed metadata says it is.
const (
	ExportNDJSON = "ndjson"
	ExportJSON   = "json"

	ExportDocumentFormat     = "auditstream.export"
	ExportVersion            = 1
	ExportSignatureAlgorithm = "Ed25519"
)

// The fixed parts of the json format. Each event is on a line of its own
// and the metadata on the last, so that the format is read line by line
// like ndjson (and still one JSON document for the seed system's clients,
// which find members by name, not position).
const (
	jsonOpen        = "{\"events\":["
	jsonVerifyOpen  = "],\"hash_chain_verification\":"
	jsonMetadataKey = "\"export_metadata\":"
)

// Bounds of what an export's verification lists: the rest is counted.
const (
	maxTamperedIDs   = 1000
	maxExportBreaks  = 100
	exportFlushBytes = 32 << 10
)

// ExportFilters are the filters an export was made with, as its signed
// metadata records them (the seed system's query_filters).
type ExportFilters struct {
	StartTime     *time.Time `json:"start_time,omitempty"`
	EndTime       *time.Time `json:"end_time,omitempty"`
	CorrelationID string     `json:"correlation_id,omitempty"`
	EventCategory string     `json:"event_category,omitempty"`
	Namespace     string     `json:"namespace,omitempty"`
	// RestrictedTo are the namespaces the exporting credential is limited
	// to (SPEC 8.1): the export holds no event outside them.
	RestrictedTo []string `json:"restricted_to_namespaces,omitempty"`
}

// ExportMetadata is an export's signed trailer: the ndjson format's last
// line, the json format's export_metadata member (last, since what it
// signs precedes it). Signature is the Ed25519 signature, by the key whose
// fingerprint is PublicKeySHA256, of the canonical JSON
// (AppendCanonicalJSON) of this object without its signature member; the
// object names the SHA-256 of every byte of the export before it
// (ContentSHA256), so the signature covers the whole file.
type ExportMetadata struct {
	Format          string        `json:"format"`
	Version         int           `json:"version"`
	ExportTimestamp time.Time     `json:"export_timestamp"`
	ExportFormat    string        `json:"export_format"`
	QueryFilters    ExportFilters `json:"query_filters"`
	ExportedBy      string        `json:"exported_by"`
	TotalEvents     int64         `json:"total_events"`
	TotalChains     int64         `json:"total_chains"`
	// Complete is false for an export that ended early (its time limit, or
	// the database failing); IncompleteReason says why. Such a file
	// verifies as what the service sent, but is not the whole answer.
	Complete         bool   `json:"complete"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`
	ContentSHA256    string `json:"content_sha256"`
	ContentBytes     int64  `json:"content_bytes"`
	// HashChainVerification is here in the ndjson format; the json format
	// has it as a member of its own, before the metadata.
	HashChainVerification *HashChainVerification `json:"hash_chain_verification,omitempty"`
	PublicKeySHA256       string                 `json:"public_key_sha256"`
	SignatureAlgorithm    string                 `json:"signature_algorithm"`
	Signature             string                 `json:"signature,omitempty"`
}

// HashChainVerification is the exporter's check of the exported events
// with the HMAC keys (the seed system's member of the same name): each
// event's hash, and its link to the exported event before it in its chain.
// Chain_seq values the filters left out are not judged here (verify-chain
// and auditctl verify see whole chains).
type HashChainVerification struct {
	TotalEventsVerified      int64   `json:"total_events_verified"`
	ValidChainEvents         int64   `json:"valid_chain_events"`
	BrokenChainEvents        int64   `json:"broken_chain_events"`
	ChainIntegrityPercentage float64 `json:"chain_integrity_percentage"`
	// UnchainedEvents were stored without a chain (before tamper evidence,
	// or with INTEGRITY_DISABLED), so cannot be verified.
	UnchainedEvents       int64     `json:"unchained_events"`
	VerificationTimestamp time.Time `json:"verification_timestamp"`
	// TamperedEventIDs lists the first broken events; Truncated says there
	// are more than it holds.
	TamperedEventIDs          []uuid.UUID `json:"tampered_event_ids"`
	TamperedEventIDsTruncated bool        `json:"tampered_event_ids_truncated,omitempty"`
	// Breaks describe the first breaks.
	Breaks []ExportBreak `json:"breaks,omitempty"`
}

// ExportBreak is a break in an exported chain.
type ExportBreak struct {
	CorrelationID string    `json:"correlation_id"`
	EventID       uuid.UUID `json:"event_id"`
	ChainSeq      int64     `json:"chain_seq"`
	Kind          BreakKind `json:"kind"`
	Message       string    `json:"message"`
}

// ExportInfo describes an export being written.
type ExportInfo struct {
	// Format is ExportNDJSON or ExportJSON.
	Format     string
	Time       time.Time
	ExportedBy string
	Filters    ExportFilters
}

// ExportWriter writes a signed export (SPEC 9.4) to w in constant memory:
// feed it the events in (correlation_id, chain_seq) order, then Close. It
// checks each event's chain as it goes (HashChainVerification), hashes
// every byte it writes, and signs the metadata at the end.
type ExportWriter struct {
	w       io.Writer
	signer  *Signer
	keys    *Keys
	meta    ExportMetadata
	digest  hash.Hash
	buf     []byte
	flushed bool
	err     error

	chain    string
	verifier *ChainVerifier
	hcv      HashChainVerification
}

// NewExportWriter starts an export to w signed by signer; keys, when not
// nil, recompute each event's hash (without them only the links are
// checked).
func NewExportWriter(w io.Writer, signer *Signer, keys *Keys, info ExportInfo) *ExportWriter {
	x := &ExportWriter{w: w, signer: signer, keys: keys, digest: sha256.New(),
		meta: ExportMetadata{
			Format: ExportDocumentFormat, Version: ExportVersion, ExportTimestamp: info.Time.UTC(),
			ExportFormat: info.Format, QueryFilters: info.Filters, ExportedBy: info.ExportedBy,
			PublicKeySHA256: KeyFingerprint(signer.PublicKey()), SignatureAlgorithm: ExportSignatureAlgorithm,
		},
		hcv: HashChainVerification{TamperedEventIDs: []uuid.UUID{}},
	}
	if info.Format == ExportJSON {
		x.content([]byte(jsonOpen))
	}
	return x
}

// Event writes e, the next event of the export.
func (x *ExportWriter) Event(e *audit.Event) error {
	if e.CorrelationID != x.chain || x.verifier == nil {
		x.chain = e.CorrelationID
		x.meta.TotalChains++
		if x.keys != nil {
			x.verifier = x.keys.NewChainVerifier(e.CorrelationID, nil).Subset()
		} else {
			x.verifier = NewLinkVerifier(e.CorrelationID).Subset()
		}
	}
	x.check(e)
	switch {
	case x.meta.ExportFormat != ExportJSON:
	case x.meta.TotalEvents == 0:
		x.content([]byte{'\n'})
	default:
		x.content([]byte(",\n"))
	}
	x.meta.TotalEvents++
	start := len(x.buf)
	x.buf = e.AppendStoredJSON(x.buf)
	if x.meta.ExportFormat != ExportJSON {
		x.buf = append(x.buf, '\n')
	}
	x.digest.Write(x.buf[start:])
	x.meta.ContentBytes += int64(len(x.buf) - start)
	if len(x.buf) >= exportFlushBytes {
		x.flush()
	}
	return x.err
}

func (x *ExportWriter) check(e *audit.Event) {
	if e.ChainSeq == nil {
		x.hcv.UnchainedEvents++
		return
	}
	x.hcv.TotalEventsVerified++
	b := x.verifier.Check(e)
	if b == nil {
		x.hcv.ValidChainEvents++
		return
	}
	x.hcv.BrokenChainEvents++
	if len(x.hcv.TamperedEventIDs) < maxTamperedIDs {
		x.hcv.TamperedEventIDs = append(x.hcv.TamperedEventIDs, e.EventID)
	} else {
		x.hcv.TamperedEventIDsTruncated = true
	}
	if len(x.hcv.Breaks) < maxExportBreaks {
		x.hcv.Breaks = append(x.hcv.Breaks, ExportBreak{CorrelationID: e.CorrelationID, EventID: e.EventID,
			ChainSeq: b.ChainSeq, Kind: b.Kind, Message: b.Message})
	}
}

// Events counts the events written so far.
func (x *ExportWriter) Events() int64 { return x.meta.TotalEvents }

// Started reports whether bytes have reached w: until then a failed export
// can still be answered with an error instead.
func (x *ExportWriter) Started() bool { return x.flushed }

// Close ends the export: the json format's closing and verification, then
// the signed metadata. incomplete, when not empty, says why the export
// ended before its last event: the metadata then says complete: false, so
// the file verifies as what was sent but not as the whole answer.
func (x *ExportWriter) Close(incomplete string, at time.Time) error {
	x.meta.Complete, x.meta.IncompleteReason = incomplete == "", incomplete
	x.hcv.VerificationTimestamp = at.UTC()
	x.hcv.ChainIntegrityPercentage = 100
	if x.hcv.TotalEventsVerified > 0 {
		x.hcv.ChainIntegrityPercentage = float64(x.hcv.ValidChainEvents) * 100 / float64(x.hcv.TotalEventsVerified)
	}
	if x.meta.ExportFormat == ExportJSON {
		hcv, err := json.Marshal(x.hcv)
		if err != nil {
			return err
		}
		x.content([]byte("\n" + jsonVerifyOpen))
		x.content(hcv)
		x.content([]byte(",\n"))
	} else {
		x.meta.HashChainVerification = &x.hcv
	}
	x.meta.ContentSHA256 = hex.EncodeToString(x.digest.Sum(nil))
	signed, err := signedBytes(x.meta)
	if err != nil {
		return fmt.Errorf("encode export metadata: %w", err)
	}
	x.meta.Signature = base64.StdEncoding.EncodeToString(x.signer.Sign(signed))
	meta, err := json.Marshal(x.meta)
	if err != nil {
		return fmt.Errorf("encode export metadata: %w", err)
	}
	if x.meta.ExportFormat == ExportJSON {
		x.buf = append(append(append(x.buf, jsonMetadataKey...), meta...), '}', '\n')
	} else {
		x.buf = append(append(x.buf, meta...), '\n')
	}
	x.flush()
	return x.err
}

// content writes bytes that the signature covers.
func (x *ExportWriter) content(b []byte) {
	x.buf = append(x.buf, b...)
	x.digest.Write(b)
	x.meta.ContentBytes += int64(len(b))
}

func (x *ExportWriter) flush() {
	if x.err != nil || len(x.buf) == 0 {
		x.buf = x.buf[:0]
		return
	}
	x.flushed = true
	_, x.err = x.w.Write(x.buf)
	x.buf = x.buf[:0]
}

// Problem kinds of an export's verification: stable names for output and
// scripts.
const (
	ExportTruncated  = "truncated"  // no signed metadata at the end
	ExportMalformed  = "malformed"  // a line that is not what the format has there
	ExportDigest     = "digest"     // the bytes before the metadata changed
	ExportSignature  = "signature"  // the metadata's signature does not verify
	ExportKey        = "key"        // signed by a key not given
	ExportIncomplete = "incomplete" // the service ended the export early
	ExportCount      = "count"      // the metadata's counts differ from the file's
	ExportTampered   = "tampered"   // the exporter found broken chains in what it exported
)

// ExportProblem is something wrong with an export file as a whole.
type ExportProblem struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// ExportReport is what VerifyExport found.
type ExportReport struct {
	// Format is the format the file has.
	Format string `json:"format"`
	// Metadata is the signed trailer (nil when there is none); Server the
	// exporter's own check of the chains, as it signed it.
	Metadata *ExportMetadata        `json:"metadata,omitempty"`
	Server   *HashChainVerification `json:"hash_chain_verification,omitempty"`
	// Keyed: each event's HMAC was recomputed (the keys were given), not
	// only the links checked.
	Keyed     bool  `json:"keyed"`
	Events    int64 `json:"events"`
	Chains    int64 `json:"chains"`
	Unchained int64 `json:"unchained_events"`
	// Skipped counts the chain_seq values between exported events that
	// the export does not hold (left out by its filters).
	Skipped  int64           `json:"skipped_chain_seq"`
	Problems []ExportProblem `json:"problems"`
	// Breaks are the first chain breaks found; MoreBreaks counts the rest.
	Breaks     []ExportBreak `json:"breaks"`
	MoreBreaks int64         `json:"more_breaks"`
}

// Valid reports an export that is signed, whole, complete and unbroken,
// by the exporter's signed check as well as by this one.
func (r *ExportReport) Valid() bool {
	return len(r.Problems) == 0 && len(r.Breaks) == 0 && r.MoreBreaks == 0
}

func (r *ExportReport) problem(kind, format string, args ...any) {
	r.Problems = append(r.Problems, ExportProblem{Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// VerifyExport checks an export read from r with no access to the
// service: that its metadata is signed by one of pub, that the bytes
// before it are those it signed, that it is complete, and every chain in
// it (keys nil: the links only, NewLinkVerifier; with the HMAC keys: each
// event's hash too). It keeps the first maxBreaks breaks. Only a read
// error is returned as an error; everything found is in the report.
func VerifyExport(r io.Reader, pub *PublicKeys, keys *Keys, maxBreaks int) (*ExportReport, error) {
	v := exportVerifier{in: bufio.NewReaderSize(r, 64<<10), digest: sha256.New(), keys: keys, maxBreaks: max(maxBreaks, 1),
		report: &ExportReport{Format: ExportNDJSON, Keyed: keys != nil, Problems: []ExportProblem{}, Breaks: []ExportBreak{}}}
	trailer, err := v.read()
	if err != nil {
		return nil, err
	}
	v.endChain()
	v.trailer(trailer, pub)
	return v.report, nil
}

type exportVerifier struct {
	in        *bufio.Reader
	digest    hash.Hash
	bytes     int64
	keys      *Keys
	maxBreaks int
	report    *ExportReport

	chain    string
	verifier *ChainVerifier
}

// read consumes the file and returns the metadata object (nil when the
// file has none).
func (v *exportVerifier) read() ([]byte, error) {
	r := v.report
	first := true
	inEvents := false // json: between the opening and the verification line
	for n := 1; ; n++ {
		line, err := v.in.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if len(line) == 0 {
			return nil, nil
		}
		body := bytes.TrimSuffix(line, []byte{'\n'})
		switch {
		case first && string(body) == jsonOpen:
			r.Format, inEvents = ExportJSON, true
		case r.Format == ExportNDJSON && bytes.HasPrefix(body, []byte(`{"format":`)):
			return body, v.end(n)
		case r.Format == ExportJSON && bytes.HasPrefix(body, []byte(jsonMetadataKey)):
			meta, ok := bytes.CutSuffix(body[len(jsonMetadataKey):], []byte("}"))
			if !ok || inEvents {
				r.problem(ExportMalformed, "line %d: the export_metadata line is not where the json format has it", n)
			}
			return meta, v.end(n)
		case r.Format == ExportJSON && bytes.HasPrefix(body, []byte(jsonVerifyOpen)):
			v.server(n, body[len(jsonVerifyOpen):])
			inEvents = false
		case r.Format == ExportJSON && !inEvents:
			r.problem(ExportMalformed, "line %d: not part of the json format", n)
		default:
			event := body
			if r.Format == ExportJSON {
				event = bytes.TrimSuffix(body, []byte{','})
			}
			v.event(n, event)
		}
		first = false
		v.digest.Write(line)
		v.bytes += int64(len(line))
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
	}
}

// end checks that nothing follows the metadata on line n.
func (v *exportVerifier) end(n int) error {
	rest, err := io.Copy(io.Discard, v.in)
	if err != nil {
		return err
	}
	if rest > 0 {
		v.report.problem(ExportMalformed, "%d byte(s) follow the signed metadata on line %d, which the signature does not cover", rest, n)
	}
	return nil
}

// server reads the json format's hash_chain_verification member.
func (v *exportVerifier) server(n int, member []byte) {
	member, ok := bytes.CutSuffix(member, []byte(","))
	var hcv HashChainVerification
	if !ok || json.Unmarshal(member, &hcv) != nil {
		v.report.problem(ExportMalformed, "line %d: hash_chain_verification is not readable", n)
		return
	}
	v.report.Server = &hcv
}

func (v *exportVerifier) event(n int, raw []byte) {
	r := v.report
	e, err := audit.ParseStoredEvent(raw)
	if err != nil {
		r.problem(ExportMalformed, "line %d: %v", n, err)
		return
	}
	r.Events++
	if e.CorrelationID != v.chain || v.verifier == nil {
		v.endChain()
		v.chain = e.CorrelationID
		r.Chains++
		if v.keys != nil {
			v.verifier = v.keys.NewChainVerifier(e.CorrelationID, nil).Subset()
		} else {
			v.verifier = NewLinkVerifier(e.CorrelationID).Subset()
		}
	}
	if e.ChainSeq == nil {
		r.Unchained++
		return
	}
	if b := v.verifier.Check(&e); b != nil {
		v.addBreak(b)
	}
}

func (v *exportVerifier) endChain() {
	if v.verifier == nil {
		return
	}
	summary, breaks := v.verifier.Finish()
	v.report.Skipped += summary.Skipped
	for i := range breaks {
		v.addBreak(&breaks[i])
	}
}

func (v *exportVerifier) addBreak(b *Break) {
	r := v.report
	if len(r.Breaks) >= v.maxBreaks {
		r.MoreBreaks++
		return
	}
	r.Breaks = append(r.Breaks, ExportBreak{CorrelationID: v.chain, EventID: b.EventID, ChainSeq: b.ChainSeq, Kind: b.Kind, Message: b.Message})
}

// trailer checks the signed metadata against the file.
func (v *exportVerifier) trailer(doc []byte, pub *PublicKeys) {
	r := v.report
	if doc == nil {
		r.problem(ExportTruncated, "the file ends without the export's signed metadata after %d byte(s): it was cut short, or is not an auditstream export", v.bytes)
		return
	}
	meta, signed, sig, err := parseExportMetadata(doc)
	if err != nil {
		r.problem(ExportMalformed, "the signed metadata is not readable: %v", err)
		return
	}
	r.Metadata = meta
	if meta.HashChainVerification != nil {
		r.Server = meta.HashChainVerification
	}
	key, ok := pub.Lookup(meta.PublicKeySHA256)
	switch {
	case !ok:
		r.problem(ExportKey, "signed by the key %s, which is not among the public keys given (%s)", meta.PublicKeySHA256,
			strings.Join(pub.Fingerprints(), ", "))
	case !ed25519.Verify(key, signed, sig):
		r.problem(ExportSignature, "the signature does not verify: the metadata was changed after signing")
	}
	if sum := hex.EncodeToString(v.digest.Sum(nil)); sum != meta.ContentSHA256 || v.bytes != meta.ContentBytes {
		r.problem(ExportDigest, "the %d byte(s) before the metadata have SHA-256 %s, the export signed %d byte(s) with %s: the file was changed",
			v.bytes, sum, meta.ContentBytes, meta.ContentSHA256)
	}
	if meta.ExportFormat != r.Format {
		r.problem(ExportMalformed, "the metadata says format %q, the file is %q", meta.ExportFormat, r.Format)
	}
	if meta.TotalEvents != r.Events || meta.TotalChains != r.Chains {
		r.problem(ExportCount, "the metadata counts %d event(s) in %d chain(s), the file holds %d in %d",
			meta.TotalEvents, meta.TotalChains, r.Events, r.Chains)
	}
	if !meta.Complete {
		r.problem(ExportIncomplete, "the service ended the export early after %d event(s): %s", meta.TotalEvents, meta.IncompleteReason)
	}
	if s := r.Server; s != nil && s.BrokenChainEvents > 0 {
		first := ""
		if len(s.Breaks) > 0 {
			b := s.Breaks[0]
			first = fmt.Sprintf("; the first: %s chain_seq %d (%s): %s", b.CorrelationID, b.ChainSeq, b.Kind, b.Message)
		}
		r.problem(ExportTampered, "the service found %d exported event(s) whose chain is broken%s", s.BrokenChainEvents, first)
	}
}

// parseExportMetadata reads the metadata and the bytes its signature
// covers.
func parseExportMetadata(doc []byte) (meta *ExportMetadata, signed, sig []byte, err error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(doc, &members); err != nil {
		return nil, nil, nil, err
	}
	meta = &ExportMetadata{}
	if err := json.Unmarshal(doc, meta); err != nil {
		return nil, nil, nil, err
	}
	if meta.Format != ExportDocumentFormat || meta.Version != ExportVersion || meta.SignatureAlgorithm != ExportSignatureAlgorithm {
		return nil, nil, nil, fmt.Errorf("format %q version %d signed with %q; this build reads %s version %d signed with %s",
			meta.Format, meta.Version, meta.SignatureAlgorithm, ExportDocumentFormat, ExportVersion, ExportSignatureAlgorithm)
	}
	if sig, err = base64.StdEncoding.Strict().DecodeString(meta.Signature); err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, nil, errors.New("signature is not a base64 Ed25519 signature")
	}
	delete(members, "signature")
	if signed, err = signedBytes(members); err != nil {
		return nil, nil, nil, err
	}
	return meta, signed, sig, nil
}
