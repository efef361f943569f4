// Package provenance decides who submitted a record (SPEC 8.3). The API
// puts the authenticated principal on each Kafka record it publishes, as
// the header auditstream-principal, with auditstream-principal-sig:
//
//	<key id>:base64(HMAC-SHA256(key, principal 0x00 id 0x00 SHA-256(value)))
//
// where id is the record's event_id (notification_id for notifications)
// and value the record's bytes as published, with a key of
// SOURCE_KEYS_FILE (internal/keyring), which the writer shares. The writer
// believes the header only when that signature verifies; anything else is
// stored as what it is, a claim by whoever could produce to the topic:
// "kafka:" + the claimed name, or "kafka:unknown" when there is none. A
// signature binds the name to one id and one value, so a header copied
// onto another record does not verify.
package provenance

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
	"sync"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/keyring"
)

const (
	// Unverified prefixes a name the writer could not verify.
	Unverified = "kafka:"
	// Unknown is submitted_by of a record that names no principal.
	Unknown = Unverified + "unknown"
	// MaxPrincipal is the longest name, in characters, that travels as
	// claimed: a Kubernetes service account's subject
	// (system:serviceaccount:<namespace>:<name>) fits.
	MaxPrincipal = 512
	// MaxSubmittedBy is the longest submitted_by: an unverified claim of
	// MaxPrincipal characters.
	MaxSubmittedBy = len(Unverified) + MaxPrincipal
)

// Keys sign and verify principal headers. A nil *Keys is signing disabled
// (SOURCE_SIGNING_DISABLED): the API sends the name unsigned and the
// writer stores every record's claim with the kafka: prefix.
type Keys struct {
	ring *keyring.Ring
}

// Load reads the key file; an empty path means signing disabled (nil).
func Load(path string) (*Keys, error) {
	if path == "" {
		return nil, nil
	}
	ring, err := keyring.Load(path)
	if err != nil {
		return nil, fmt.Errorf("source keys: %w", err)
	}
	return New(ring), nil
}

// Open is Load for a binary's start: it logs which keys it loaded, or
// warns that signing is disabled.
func Open(path string, log *zap.Logger) (*Keys, error) {
	keys, err := Load(path)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		log.Warn("source signing disabled (SOURCE_SIGNING_DISABLED): every record is stored with an unverified submitted_by, kafka:<principal>")
		return nil, nil
	}
	log.Info("source keys loaded", zap.Strings("key_ids", keys.KeyIDs()), zap.String("signing_key_id", keys.ring.Signing().ID))
	return keys, nil
}

// New uses ring's signing key to sign and every key to verify.
func New(ring *keyring.Ring) *Keys { return &Keys{ring: ring} }

// KeyIDs lists the loaded key ids, for the start-up log.
func (k *Keys) KeyIDs() []string {
	if k == nil {
		return nil
	}
	return k.ring.IDs()
}

// AppendHeaders appends to hs the headers that carry principal on the
// record id with this value: the name, and its signature unless signing
// is disabled.
func (k *Keys) AppendHeaders(hs []kafka.Header, principal, id string, value []byte) []kafka.Header {
	hs = append(hs, kafka.Header{Key: []byte(kafka.HeaderPrincipal), Value: []byte(principal)})
	if k == nil {
		return hs
	}
	key := k.ring.Signing()
	sig := key.ID + ":" + base64.StdEncoding.EncodeToString(mac(key.Secret, principal, id, value))
	return append(hs, kafka.Header{Key: []byte(kafka.HeaderPrincipalSig), Value: []byte(sig)})
}

// SubmittedBy returns what to store as submitted_by for the record id with
// value and headers: the principal when its signature verifies, else the
// claim marked as unverified. A claim that cannot be stored as text (not
// UTF-8, a NUL, longer than MaxPrincipal) is no name at all. A verified
// name that itself starts with "kafka:" is stored with the prefix added
// all the same, so that a stored value starting with it is never a
// verified name (see Result).
func (k *Keys) SubmittedBy(headers []kafka.Header, id string, value []byte) string {
	principal, sig, ok := find(headers)
	if !ok || !storable(principal) {
		return Unknown
	}
	// The API signs only records that carry their id.
	if k != nil && sig != "" && id != "" && !strings.HasPrefix(principal, Unverified) && k.verify(principal, sig, id, value) {
		return principal
	}
	return Unverified + principal
}

// FromSystem reports whether a record SubmittedBy named submittedBy comes
// from auditstream itself (audit.SystemPrincipal), the only sender allowed
// the reserved category auditstream: its signature verified, or, with
// signing disabled, where no name verifies, it claims to be the system,
// which the stored kafka: prefix shows for what it is.
func (k *Keys) FromSystem(submittedBy string) bool {
	return submittedBy == audit.SystemPrincipal || k == nil && submittedBy == Unverified+audit.SystemPrincipal
}

// Result names what SubmittedBy decided, for metrics: verified, unverified
// (a claimed name), or unknown (none).
func Result(submittedBy string) string {
	switch {
	case submittedBy == Unknown:
		return "unknown"
	case strings.HasPrefix(submittedBy, Unverified):
		return "unverified"
	}
	return "verified"
}

func (k *Keys) verify(principal, sig, id string, value []byte) bool {
	kid, b64, ok := strings.Cut(sig, ":")
	if !ok {
		return false
	}
	secret, ok := k.ring.Secret(kid)
	if !ok {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && hmac.Equal(got, mac(secret, principal, id, value))
}

// find returns the first principal header and the first signature; Kafka
// allows a header more than once, and a second copy adds nothing a
// producer could not forge.
func find(headers []kafka.Header) (principal, sig string, ok bool) {
	var haveSig bool
	for _, h := range headers {
		switch string(h.Key) {
		case kafka.HeaderPrincipal:
			if !ok {
				principal, ok = string(h.Value), true
			}
		case kafka.HeaderPrincipalSig:
			if !haveSig {
				sig, haveSig = string(h.Value), true
			}
		}
	}
	return principal, sig, ok
}

func storable(name string) bool {
	return name != "" && utf8.ValidString(name) && !strings.ContainsRune(name, 0) &&
		utf8.RuneCountInString(name) <= MaxPrincipal
}

// mac is HMAC-SHA256(secret, principal 0x00 id 0x00 SHA-256(value)). The
// NUL separators cannot occur inside a principal the writer accepts or an
// id, so no two (principal, id) pairs sign the same bytes.
func mac(secret []byte, principal, id string, value []byte) []byte {
	digest := sha256.Sum256(value)
	pool, ok := macs.Load(string(secret))
	if !ok {
		key := bytes.Clone(secret)
		pool, _ = macs.LoadOrStore(string(key), &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	h := pool.(*sync.Pool).Get().(hash.Hash)
	defer pool.(*sync.Pool).Put(h)
	h.Reset()
	h.Write([]byte(principal))
	h.Write([]byte{0})
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(digest[:])
	return h.Sum(nil)
}

// macs pools HMAC states by secret (string(secret) -> *sync.Pool of
// hash.Hash): hmac.New hashes the key into two fresh SHA-256 states, on
// every record the API signs and the writer verifies. A key file holds a
// few keys, so the map stays small.
var macs sync.Map
