package integrity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
)

// Signer signs with an Ed25519 private key: checkpoints
// (CHECKPOINT_SIGNING_KEY_FILE) and exports (EXPORT_SIGNING_KEY_FILE).
type Signer struct {
	key ed25519.PrivateKey
	pub ed25519.PublicKey
}

// LoadSigner reads a PEM "PRIVATE KEY" block holding a PKCS#8 Ed25519
// key, as `openssl genpkey -algorithm ed25519` and `auditctl keys` write
// it. Errors name the file, never the key.
func LoadSigner(path string) (*Signer, error) { return loadPEM(path, "signing key", ParseSigner) }

// loadPEM reads the key file at path with parse; errors say what the file
// is (what) and name it, never its content.
func loadPEM[T any](path, what string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	k, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return k, nil
}

// ParseSigner is LoadSigner for a key file's contents.
func ParseSigner(data []byte) (*Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`not a PEM "PRIVATE KEY" (PKCS#8) block; generate one with: openssl genpkey -algorithm ed25519`)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKCS#8: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, not Ed25519", key)
	}
	return NewSigner(priv), nil
}

// NewSigner signs with priv.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	return &Signer{key: priv, pub: priv.Public().(ed25519.PublicKey)}
}

// Sign returns the Ed25519 signature of msg.
func (s *Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.key, msg) }

// PublicKey is the key that verifies s's signatures.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// PublicKeyPEM is PublicKey as a PEM "PUBLIC KEY" (PKIX) block, what
// GET /api/v1/audit/checkpoints/public-key serves.
func (s *Signer) PublicKeyPEM() []byte { return MarshalPublicKey(s.pub) }

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" (PKIX) block, as
// `openssl pkey -pubout` writes it.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for an Ed25519 key
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a PEM "PUBLIC KEY" block holding an Ed25519 key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New(`not a PEM "PUBLIC KEY" block`)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, not Ed25519", key)
	}
	return pub, nil
}

// LoadPublicKey reads ParsePublicKey's format from a file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	return loadPEM(path, "public key", ParsePublicKey)
}

// PublicKeys are the Ed25519 public keys a verifier accepts, found by the
// fingerprint a signed document names: after a change of signing key,
// documents signed before and after both verify.
type PublicKeys struct {
	keys map[string]ed25519.PublicKey
	pem  []byte
}

// ParsePublicKeys reads one or more PEM "PUBLIC KEY" blocks (a file of
// concatenated public keys, the current one last).
func ParsePublicKeys(data []byte) (*PublicKeys, error) {
	p := &PublicKeys{keys: map[string]ed25519.PublicKey{}}
	for rest := data; ; {
		block, next := pem.Decode(rest)
		if block == nil {
			break
		}
		pub, err := ParsePublicKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, err
		}
		p.keys[KeyFingerprint(pub)] = pub
		p.pem = append(p.pem, MarshalPublicKey(pub)...)
		rest = next
	}
	if len(p.keys) == 0 {
		return nil, errors.New(`no PEM "PUBLIC KEY" block`)
	}
	return p, nil
}

// LoadPublicKeys reads the PEM public keys of every file in paths.
func LoadPublicKeys(paths ...string) (*PublicKeys, error) {
	var all []byte
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		if _, err := ParsePublicKeys(data); err != nil {
			return nil, fmt.Errorf("public key %s: %w", path, err)
		}
		all = append(all, data...)
	}
	return ParsePublicKeys(all)
}

// Lookup returns the key of fingerprint (KeyFingerprint).
func (p *PublicKeys) Lookup(fingerprint string) (ed25519.PublicKey, bool) {
	k, ok := p.keys[fingerprint]
	return k, ok
}

// Fingerprints lists the keys, for messages.
func (p *PublicKeys) Fingerprints() []string {
	return slices.Sorted(maps.Keys(p.keys))
}

// PEM is every key as a PEM "PUBLIC KEY" block, in the order read: what
// GET /api/v1/audit/checkpoints/public-key serves.
func (p *PublicKeys) PEM() []byte { return p.pem }

// KeyFingerprint names a public key: the lowercase hex SHA-256 of its 32
// bytes. Signed documents carry it, so a verifier holding several keys
// (after a rotation) knows which one to use, and a document signed by
// another key is reported as such rather than as a bad signature.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// GenerateSigningKey returns a new Ed25519 key pair as PEM: the PKCS#8
// private key (write it with mode 0600) and its PKIX public key.
func GenerateSigningKey() (privatePEM, publicPEM []byte) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader) // crypto/rand never fails on Linux
	der, _ := x509.MarshalPKCS8PrivateKey(priv)      // cannot fail for an Ed25519 key
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), MarshalPublicKey(pub)
}
