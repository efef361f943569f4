package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/auditstream/auditstream/internal/audit"
)

// TokenPrefix starts every token auditctl issues, so a leaked one is
// recognisable (secret scanners, log reviews) and tells what it belongs to.
const TokenPrefix = "ast_"

// tokenRandomBytes is the entropy of an issued token: 256 bits, beyond any
// guessing, and enough that an unsalted SHA-256 of it is safe to store.
const tokenRandomBytes = 32

// NewToken returns a new random API key and its tokens-file entry. The key
// itself is shown once and never stored; the entry holds its SHA-256.
func NewToken(name string, scopes []Scope, namespaces []string) (token string, entry TokenEntry, err error) {
	b := make([]byte, tokenRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", TokenEntry{}, fmt.Errorf("read random bytes: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	entry = TokenEntry{Name: name, SHA256: TokenSHA256(token), Scopes: scopes, Namespaces: namespaces}
	if err := entry.validate(); err != nil {
		return "", TokenEntry{}, err
	}
	return token, entry, nil
}

// TokenSHA256 is the lowercase hex SHA-256 of a token: the form the tokens
// file stores.
func TokenSHA256(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokensFile is the YAML document of AUTH_TOKENS_FILE (SPEC 8.2).
type TokensFile struct {
	Tokens []TokenEntry `json:"tokens"`
}

// TokenEntry is one API key: who it is, the hash of its token, what it may
// do, and optionally the namespaces it is limited to.
type TokenEntry struct {
	Name       string   `json:"name"`
	SHA256     string   `json:"sha256"`
	Scopes     []Scope  `json:"scopes"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// YAML renders the file as AUTH_TOKENS_FILE expects it.
func (f TokensFile) YAML() ([]byte, error) { return yaml.Marshal(f) }

// WriteFile writes the file for the API to read, readable by its owner
// only: the hashes are not secrets, but the list of who may do what is
// nobody else's business.
func (f TokensFile) WriteFile(path string) error {
	b, err := f.YAML()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func (e TokenEntry) validate() error {
	var errs []error
	if strings.TrimSpace(e.Name) == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if e.Name == audit.SystemPrincipal {
		errs = append(errs, errReservedName)
	}
	if len(e.SHA256) != sha256.Size*2 || strings.ToLower(e.SHA256) != e.SHA256 {
		errs = append(errs, errors.New("sha256 must be the 64 lowercase hex digits of the token's SHA-256 (the token itself is never stored)"))
	} else if _, err := hex.DecodeString(e.SHA256); err != nil {
		errs = append(errs, errors.New("sha256 is not hex"))
	}
	errs = append(errs, validateGrant(e.Scopes, e.Namespaces))
	return errors.Join(errs...)
}

// validateGrant checks what a token entry or a policy rule grants.
func validateGrant(scopes []Scope, namespaces []string) error {
	var errs []error
	if len(scopes) == 0 {
		errs = append(errs, errors.New("scopes is empty"))
	}
	for _, s := range scopes {
		if _, err := ParseScope(string(s)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range namespaces {
		if strings.TrimSpace(ns) == "" {
			errs = append(errs, errors.New("namespaces has an empty entry"))
		}
	}
	return errors.Join(errs...)
}

// tokenSet is a loaded tokens file, ready for look-ups.
type tokenSet struct {
	digests    [][sha256.Size]byte
	principals []Principal
}

// readYAML decodes the YAML file at path into dst, strictly: a misspelt
// "namespace:" is an error instead of a grant that silently lost its
// restriction.
func readYAML(path, what string, dst any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s file: %w", what, err)
	}
	if err := yaml.UnmarshalStrict(b, dst); err != nil {
		return fmt.Errorf("%s file %s: %w", what, path, err)
	}
	return nil
}

func loadTokens(path string) (*tokenSet, error) {
	var f TokensFile
	if err := readYAML(path, "tokens", &f); err != nil {
		return nil, err
	}
	set := &tokenSet{}
	names := map[string]bool{}
	hashes := map[string]bool{}
	var errs []error
	for i, e := range f.Tokens {
		if err := e.validate(); err != nil {
			errs = append(errs, fmt.Errorf("tokens[%d] (%s): %w", i, e.Name, err))
			continue
		}
		if names[e.Name] || hashes[e.SHA256] {
			errs = append(errs, fmt.Errorf("tokens[%d] (%s): name or sha256 appears twice", i, e.Name))
			continue
		}
		names[e.Name], hashes[e.SHA256] = true, true
		var d [sha256.Size]byte
		_, _ = hex.Decode(d[:], []byte(e.SHA256))
		set.digests = append(set.digests, d)
		set.principals = append(set.principals, Principal{Name: e.Name, Scopes: e.Scopes, Namespaces: e.Namespaces})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return set, nil
}

// lookup finds the entry of token. Every entry is compared, in constant
// time, whether or not an earlier one matched, so the time taken says
// nothing about which hashes are close to the presented one.
func (s *tokenSet) lookup(token string) (Principal, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.digests {
		if subtle.ConstantTimeCompare(s.digests[i][:], sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	return s.principals[found], true
}
