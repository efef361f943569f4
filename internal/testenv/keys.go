package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
)

// IntegrityKeys are the files of tamper evidence: the chain's HMAC key
// file, the checkpoint signing key and its public key (the writer's), and
// the export signing key and its public key (ingest-api's).
type IntegrityKeys struct {
	KeysFile, SigningKeyFile, PublicKeyFile string
	ExportKeyFile, ExportPublicKeyFile      string
}

// GenerateIntegrityKeys writes a key file with one new key (id dev-<time>), and
// two new Ed25519 key pairs, into dir: what `make dev`, the benchmarks and
// the tests start a writer and ingest-api with.
func GenerateIntegrityKeys(dir string) (IntegrityKeys, error) {
	k := IntegrityKeys{
		KeysFile:            filepath.Join(dir, "integrity-keys.yaml"),
		SigningKeyFile:      filepath.Join(dir, "checkpoint-signing-key.pem"),
		PublicKeyFile:       filepath.Join(dir, "checkpoint-signing-key.pub.pem"),
		ExportKeyFile:       filepath.Join(dir, "export-signing-key.pem"),
		ExportPublicKeyFile: filepath.Join(dir, "export-signing-key.pub.pem"),
	}
	// A new id each time: a key made again is another secret, and events
	// linked with the old one must read as unverifiable, not as altered.
	if err := keyring.Generate(k.KeysFile, "dev-"+time.Now().UTC().Format("20060102T150405.000000")); err != nil {
		return IntegrityKeys{}, err
	}
	for _, pair := range [][2]string{{k.SigningKeyFile, k.PublicKeyFile}, {k.ExportKeyFile, k.ExportPublicKeyFile}} {
		priv, pub := integrity.GenerateSigningKey()
		if err := os.WriteFile(pair[0], priv, 0o600); err != nil {
			return IntegrityKeys{}, fmt.Errorf("write signing key: %w", err)
		}
		if err := os.WriteFile(pair[1], pub, 0o644); err != nil {
			return IntegrityKeys{}, fmt.Errorf("write public key: %w", err)
		}
	}
	return k, nil
}

// Env is the writer's environment for these keys.
func (k IntegrityKeys) Env() []string {
	return []string{"INTEGRITY_KEYS_FILE=" + k.KeysFile, "CHECKPOINT_SIGNING_KEY_FILE=" + k.SigningKeyFile}
}

// APIEnv is ingest-api's environment for these keys: verify-chain, the
// export and the checkpoints' public key.
func (k IntegrityKeys) APIEnv() []string {
	return []string{"INTEGRITY_KEYS_FILE=" + k.KeysFile, "CHECKPOINT_PUBLIC_KEY_FILE=" + k.PublicKeyFile, "EXPORT_SIGNING_KEY_FILE=" + k.ExportKeyFile}
}
