package keyring

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func b64(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "old.secret"), []byte(b64(32, 1)+"\n"), 0o600))
	path := filepath.Join(dir, "keys.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`keys:
  - id: old
    secret_file: old.secret
  - id: new.2025-06
    secret: `+b64(48, 2)+`
`), 0o600))

	r, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, []string{"old", "new.2025-06"}, r.IDs())
	require.Equal(t, Key{ID: "new.2025-06", Secret: bytes.Repeat([]byte{2}, 48)}, r.Signing(), "the last entry signs")
	old, ok := r.Secret("old")
	require.True(t, ok)
	require.Equal(t, bytes.Repeat([]byte{1}, 32), old, "a relative secret_file is next to the key file; its line break is ignored")
	_, ok = r.Secret("gone")
	require.False(t, ok)
}

func TestParseRefusals(t *testing.T) {
	long := b64(32, 7)
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", ``, "no keys"},
		{"no keys", `keys: []`, "no keys"},
		{"not the format", `tokens: [{name: a}]`, "not a key file"},
		{"misspelt field", "keys:\n  - id: a\n    secert: " + long, "not a key file"},
		{"no secret", `keys: [{id: a}]`, `key "a": needs secret or secret_file`},
		{"both secrets", "keys: [{id: a, secret: " + long + ", secret_file: f}]", "not both"},
		{"short secret", "keys: [{id: a, secret: " + b64(31, 7) + "}]", "31 bytes; at least 32"},
		{"not base64", `keys: [{id: a, secret: "not base64!"}]`, "not base64"},
		{"missing secret file", `keys: [{id: a, secret_file: /nonexistent/s}]`, "no such file"},
		{"id with a colon", "keys: [{id: 'a:b', secret: " + long + "}]", "must be 1 to 64 letters"},
		{"empty id", "keys: [{id: '', secret: " + long + "}]", "must be 1 to 64 letters"},
		{"same id twice", "keys: [{id: a, secret: " + long + "}, {id: a, secret: " + long + "}]", "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir())
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), long, "no secret in an error")
		})
	}
}

func TestNewKeyAndMarshal(t *testing.T) {
	a, err := NewKey("a")
	require.NoError(t, err)
	b, err := NewKey("b")
	require.NoError(t, err)
	require.Len(t, a.Secret, MinSecretBytes)
	require.NotEqual(t, a.Secret, b.Secret)
	_, err = NewKey("bad id")
	require.Error(t, err)

	r, err := Parse(Marshal(a, b), "")
	require.NoError(t, err)
	require.Equal(t, b, r.Signing())
	s, ok := r.Secret("a")
	require.True(t, ok)
	require.Equal(t, a.Secret, s)
	require.True(t, strings.HasPrefix(string(Marshal(a)), "keys:"))
}

func TestGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, Generate(path, "dev"))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the file holds a secret")
	r, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, "dev", r.Signing().ID)
	require.Error(t, Generate(filepath.Join(t.TempDir(), "keys.yaml"), "bad id"))
}
