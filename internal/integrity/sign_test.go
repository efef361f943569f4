package integrity_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/integrity"
)

// An Ed25519 key pair as `openssl genpkey -algorithm ed25519` and
// `openssl pkey -pubout` wrote them, and openssl's signature of
// "auditstream" (`openssl pkeyutl -sign -rawin`): a test key, published.
const (
	opensslPrivate = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIBu7v6dxUQ3zeWTWaaUiNwY3uSbFVsw0dlE8DAD7tYQW
-----END PRIVATE KEY-----
`
	opensslPublic = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA1M7gzPlAr0k76GiHlpOeNy1NKLpTeCEK/EfCa/bUqCw=
-----END PUBLIC KEY-----
`
	opensslSignature = "s85pkbaV92/snjN8GhruPCpXrf7OBAVlbBxrI0dz6q8Xkn9tko2LxPVFShjYdeuNMVH4/2QeFlea50DgO0QRCw=="
)

// TestOpenSSLKeys: the formats are openssl's, both ways.
func TestOpenSSLKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoint.pem")
	require.NoError(t, os.WriteFile(path, []byte(opensslPrivate), 0o600))
	s, err := integrity.LoadSigner(path)
	require.NoError(t, err)
	require.Equal(t, opensslPublic, string(s.PublicKeyPEM()), "the public key PEM is openssl's")
	pub, err := integrity.ParsePublicKey([]byte(opensslPublic))
	require.NoError(t, err)
	require.Equal(t, s.PublicKey(), pub)

	sig, err := base64.StdEncoding.DecodeString(opensslSignature)
	require.NoError(t, err)
	require.Equal(t, sig, s.Sign([]byte("auditstream")), "Ed25519 is deterministic: openssl's signature")
	require.True(t, ed25519.Verify(pub, []byte("auditstream"), sig))
}

func TestGenerateSigningKey(t *testing.T) {
	priv, pub := integrity.GenerateSigningKey()
	s, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	got, err := integrity.ParsePublicKey(pub)
	require.NoError(t, err)
	require.Equal(t, s.PublicKey(), got)
	require.Len(t, integrity.KeyFingerprint(got), 64)
	priv2, _ := integrity.GenerateSigningKey()
	require.NotEqual(t, priv, priv2)
}

func TestSigningKeyErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	// A P-256 key in PKCS#8 (openssl genpkey -algorithm EC).
	const ecPKCS8 = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgz7xuf9Wo0JuPy6Af
BluVMXm1DlwRrhozaG/BzlMukQahRANCAAQz4OPa2/+UpR5U26mxIrCBNRg4+scp
4KBLpAfpjuG0eFTmDcDVuqYRYiRHxoDvtA67XY3Ebmhd9HMG+bBBgqW1
-----END PRIVATE KEY-----
`
	for _, tc := range []struct{ name, content, want string }{
		{"not PEM", "hello", "PRIVATE KEY"},
		{"a public key", opensslPublic, "PRIVATE KEY"},
		{"not Ed25519", ecPKCS8, "not Ed25519"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(tc.name, tc.content)
			_, err := integrity.LoadSigner(path)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, path, "names the file")
		})
	}
	_, err := integrity.LoadSigner(filepath.Join(dir, "missing.pem"))
	require.ErrorContains(t, err, "missing.pem")
	_, err = integrity.ParsePublicKey([]byte(opensslPrivate))
	require.ErrorContains(t, err, "PUBLIC KEY")
}

// TestPublicKeys: a file of several public keys (after a change of
// signing key) verifies the documents of each, and is served as read.
func TestPublicKeys(t *testing.T) {
	_, second := integrity.GenerateSigningKey()
	dir := t.TempDir()
	old, current := filepath.Join(dir, "old.pub.pem"), filepath.Join(dir, "current.pub.pem")
	require.NoError(t, os.WriteFile(old, []byte(opensslPublic), 0o644))
	require.NoError(t, os.WriteFile(current, second, 0o644))
	keys, err := integrity.LoadPublicKeys(old, current)
	require.NoError(t, err)
	require.Equal(t, opensslPublic+string(second), string(keys.PEM()))
	require.Len(t, keys.Fingerprints(), 2)
	pub, err := integrity.ParsePublicKey([]byte(opensslPublic))
	require.NoError(t, err)
	got, ok := keys.Lookup(integrity.KeyFingerprint(pub))
	require.True(t, ok)
	require.Equal(t, pub, got)
	_, ok = keys.Lookup("00")
	require.False(t, ok)

	both, err := integrity.ParsePublicKeys(keys.PEM())
	require.NoError(t, err)
	require.Equal(t, keys.Fingerprints(), both.Fingerprints())

	_, err = integrity.ParsePublicKeys([]byte("not a key"))
	require.ErrorContains(t, err, "PUBLIC KEY")
	_, err = integrity.ParsePublicKeys([]byte(opensslPrivate))
	require.ErrorContains(t, err, "PUBLIC KEY")
	_, err = integrity.LoadPublicKeys(filepath.Join(dir, "missing.pem"))
	require.ErrorContains(t, err, "missing.pem")
}
