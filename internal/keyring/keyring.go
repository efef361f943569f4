// Package keyring loads the HMAC key files of auditstream: SOURCE_KEYS_FILE
// (the API signs the principal of each record, the writer checks it) and
// INTEGRITY_KEYS_FILE (the hash chain). Both have one format:
//
//	keys:
//	  - id: 2025-01
//	    secret_file: /run/secrets/source-2025-01   # or secret: <base64>
//	  - id: 2025-06
//	    secret: 3q2+7w...   # base64 of at least 32 random bytes
//
// The last entry signs; every entry verifies, so rotation is adding a key
// (and, once nothing signed with an old one needs checking any more,
// removing that). A secret_file holds the base64 text, as a mounted
// Kubernetes Secret does; a relative path is relative to the key file.
//
// Errors name the file and the key id, never a secret.
package keyring

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// MinSecretBytes is the shortest secret accepted: HMAC-SHA256's block of
// security, 256 bits.
const MinSecretBytes = 32

// Key is one HMAC key.
type Key struct {
	ID     string
	Secret []byte
}

// Ring is a loaded key file: the signing key and every key that verifies.
type Ring struct {
	keys []Key
	byID map[string][]byte
}

// file is the YAML document.
type file struct {
	Keys []entry `json:"keys"`
}

type entry struct {
	ID         string `json:"id"`
	Secret     string `json:"secret,omitempty"`
	SecretFile string `json:"secret_file,omitempty"`
}

// validID keeps ids printable and free of the ':' that separates an id
// from the signature it precedes in a header (`kid:signature`).
var validID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Load reads and checks the key file at path.
func Load(path string) (*Ring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	r, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return r, nil
}

// Parse checks a key file's contents; dir is where relative secret_file
// paths start.
func Parse(data []byte, dir string) (*Ring, error) {
	var f file
	// Strict: a misspelt field (secert:) is an error, not a key without
	// a secret.
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("not a key file (keys: [{id, secret | secret_file}]): %w", err)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("no keys")
	}
	r := &Ring{byID: make(map[string][]byte, len(f.Keys))}
	var errs []error
	for i, e := range f.Keys {
		secret, err := e.secret(dir)
		switch {
		case !validID.MatchString(e.ID):
			errs = append(errs, fmt.Errorf("key %d: id %q must be 1 to 64 letters, digits, '.', '_' or '-'", i+1, e.ID))
		case r.byID[e.ID] != nil:
			errs = append(errs, fmt.Errorf("key %q: listed twice", e.ID))
		case err != nil:
			errs = append(errs, fmt.Errorf("key %q: %w", e.ID, err))
		default:
			r.keys = append(r.keys, Key{ID: e.ID, Secret: secret})
			r.byID[e.ID] = secret
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func (e entry) secret(dir string) ([]byte, error) {
	text := e.Secret
	switch {
	case e.Secret != "" && e.SecretFile != "":
		return nil, errors.New("set secret or secret_file, not both")
	case e.SecretFile != "":
		path := e.SecretFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secret_file: %w", err)
		}
		text = string(b)
	case e.Secret == "":
		return nil, errors.New("needs secret or secret_file")
	}
	secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		// The decoder's error quotes an offset, not the text.
		return nil, fmt.Errorf("secret is not base64: %w", err)
	}
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("secret has %d bytes; at least %d random bytes are needed", len(secret), MinSecretBytes)
	}
	return secret, nil
}

// Signing is the key that signs: the file's last.
func (r *Ring) Signing() Key { return r.keys[len(r.keys)-1] }

// Secret returns the secret of key id, for verifying.
func (r *Ring) Secret(id string) ([]byte, bool) {
	s, ok := r.byID[id]
	return s, ok
}

// IDs lists the key ids in file order, for logs: which keys are loaded,
// never what they are.
func (r *Ring) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID
	}
	return ids
}

// NewKey returns a key of MinSecretBytes random bytes.
func NewKey(id string) (Key, error) {
	if !validID.MatchString(id) {
		return Key{}, fmt.Errorf("key id %q must be 1 to 64 letters, digits, '.', '_' or '-'", id)
	}
	secret := make([]byte, MinSecretBytes)
	_, _ = rand.Read(secret) // crypto/rand.Read never fails on Linux
	return Key{ID: id, Secret: secret}, nil
}

// Marshal returns the key file listing keys with inline secrets, the last
// one signing. Write it with mode 0600: it holds the secrets.
func Marshal(keys ...Key) []byte {
	var f file
	for _, k := range keys {
		f.Keys = append(f.Keys, entry{ID: k.ID, Secret: base64.StdEncoding.EncodeToString(k.Secret)})
	}
	b, _ := yaml.Marshal(f) // plain strings always encode
	return b
}

// Generate writes a key file at path with one new key, readable by its
// owner only: what `make dev`, the benchmarks and the tests start with.
func Generate(path, id string) error {
	k, err := NewKey(id)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, Marshal(k), 0o600); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}
