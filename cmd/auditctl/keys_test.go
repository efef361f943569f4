package main

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
)

// TestKeysPrinted: what auditctl keys prints is a key file the writer
// loads and a key pair that signs and verifies, in text and in JSON.
func TestKeysPrinted(t *testing.T) {
	code, out, stderr := run(t, "keys", "--id", "2025-06")
	require.Equal(t, 0, code, stderr)
	entry := out[strings.Index(out, "\nkeys:")+1 : strings.Index(out, "\nEd25519")]
	ring, err := keyring.Parse([]byte(entry), "")
	require.NoError(t, err, entry)
	require.Equal(t, "2025-06", ring.Signing().ID)
	priv := out[strings.Index(out, "-----BEGIN PRIVATE KEY-----") : strings.Index(out, "-----END PRIVATE KEY-----")+len("-----END PRIVATE KEY-----\n")]
	signer, err := integrity.ParseSigner([]byte(priv))
	require.NoError(t, err)
	pub, err := integrity.ParsePublicKey([]byte(out[strings.Index(out, "-----BEGIN PUBLIC KEY-----"):]))
	require.NoError(t, err)
	require.Equal(t, signer.PublicKey(), pub)
	require.Contains(t, out, integrity.KeyFingerprint(pub))
	require.Equal(t, 1, strings.Count(out, "BEGIN PRIVATE KEY"), "the private key is printed once")

	code, out, stderr = run(t, "keys", "--json", "--kind", "hmac")
	require.Equal(t, 0, code, stderr)
	var got keysJSON
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Nil(t, got.Ed25519)
	ring, err = keyring.Parse([]byte(got.HMAC.Entry), "")
	require.NoError(t, err)
	secret, ok := ring.Secret(got.HMAC.ID)
	require.True(t, ok)
	require.Len(t, secret, keyring.MinSecretBytes)
	require.Regexp(t, `^\d{4}-\d{2}$`, got.HMAC.ID, "the current month by default")

	code, out, stderr = run(t, "keys", "--json", "--kind", "ed25519")
	require.Equal(t, 0, code, stderr)
	got = keysJSON{}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Nil(t, got.HMAC)
	signer, err = integrity.ParseSigner([]byte(got.Ed25519.PrivateKeyPEM))
	require.NoError(t, err)
	require.Equal(t, integrity.KeyFingerprint(signer.PublicKey()), got.Ed25519.PublicKeySHA256)
	require.True(t, ed25519.Verify(signer.PublicKey(), []byte("x"), signer.Sign([]byte("x"))))
}

// TestKeysDir: --dir writes the files a writer is started with, secrets
// readable by their owner only; it never overwrites a key, and with
// --keep-existing (compose's init container) a second run keeps them.
func TestKeysDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "integrity")
	code, out, stderr := run(t, "keys", "--dir", dir)
	require.Equal(t, 0, code, stderr)
	keysFile, privFile, pubFile := filepath.Join(dir, "integrity-keys.yaml"), filepath.Join(dir, "checkpoint-signing-key.pem"),
		filepath.Join(dir, "checkpoint-signing-key.pub.pem")
	for _, f := range []string{keysFile, privFile, pubFile} {
		require.Contains(t, out, "written "+f)
	}
	require.NotContains(t, out, "PRIVATE KEY", "secrets go to the files, not the terminal")
	for path, mode := range map[string]os.FileMode{keysFile: 0o600, privFile: 0o600, pubFile: 0o644} {
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, mode, st.Mode().Perm(), path)
	}
	_, err := integrity.LoadKeys(keysFile)
	require.NoError(t, err)
	signer, err := integrity.LoadSigner(privFile)
	require.NoError(t, err)
	pub, err := integrity.LoadPublicKey(pubFile)
	require.NoError(t, err)
	require.Equal(t, signer.PublicKey(), pub)
	before, err := os.ReadFile(keysFile)
	require.NoError(t, err)

	code, _, stderr = run(t, "keys", "--dir", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "never overwritten")

	code, out, stderr = run(t, "keys", "--dir", dir, "--keep-existing", "--json")
	require.Equal(t, 0, code, stderr)
	var got keysJSON
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, map[string]string{keysFile: "kept", privFile: "kept", pubFile: "kept"}, got.Files)
	require.Empty(t, got.HMAC.Secret)
	require.Empty(t, got.Ed25519.PrivateKeyPEM)
	after, err := os.ReadFile(keysFile)
	require.NoError(t, err)
	require.Equal(t, before, after)

	// An export signing key next to it.
	code, _, stderr = run(t, "keys", "--dir", dir, "--kind", "ed25519", "--ed25519-name", "export-signing-key")
	require.Equal(t, 0, code, stderr)
	_, err = integrity.LoadSigner(filepath.Join(dir, "export-signing-key.pem"))
	require.NoError(t, err)
}

// TestKeysExitCodes: 2 on usage errors with the reason, 1 on a failure;
// --help has examples.
func TestKeysExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, ""},
		{"unknown kind", []string{"keys", "--kind", "rsa"}, 2, "--kind"},
		{"bad id", []string{"keys", "--id", "a:b"}, 1, "key id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			require.Equal(t, tc.code, code, stderr)
			require.Contains(t, stderr, tc.want)
		})
	}
	code, out, _ := run(t, "keys", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "Examples:")
	require.Contains(t, out, "AUDITCTL_JSON")
}
