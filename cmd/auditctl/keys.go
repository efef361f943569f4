package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
)

// keysJSON is the --json form of what keys generated.
type keysJSON struct {
	HMAC    *hmacJSON    `json:"hmac,omitempty"`
	Ed25519 *ed25519JSON `json:"ed25519,omitempty"`
	// Files lists, with --dir, each file and whether it was written or
	// kept.
	Files map[string]string `json:"files,omitempty"`
}

// The secrets are left out with --dir: they are in the files, not on the
// terminal.
type hmacJSON struct {
	ID     string `json:"id"`
	Secret string `json:"secret,omitempty"`
	// Entry is the key file with this key alone.
	Entry string `json:"entry,omitempty"`
}

type ed25519JSON struct {
	PrivateKeyPEM   string `json:"private_key_pem,omitempty"`
	PublicKeyPEM    string `json:"public_key_pem"`
	PublicKeySHA256 string `json:"public_key_sha256"`
}

// generated is one run's keys.
type generated struct {
	hmac        *keyring.Key
	entry       []byte
	priv, pub   []byte
	fingerprint string
}

func runKeys(c config.AuditctlKeys, out io.Writer) error {
	g, err := generate(c)
	if err != nil {
		return err
	}
	if c.Dir != "" {
		return writeKeyFiles(c, g, out)
	}
	if c.JSON {
		return json.NewEncoder(out).Encode(g.json())
	}
	if g.hmac != nil {
		if _, err := fmt.Fprintf(out, `HMAC key for INTEGRITY_KEYS_FILE (shown once; to rotate, add the entry at the end of keys:):

%s
`, g.entry); err != nil {
			return err
		}
	}
	if g.priv != nil {
		_, err := fmt.Fprintf(out, `Ed25519 private key for CHECKPOINT_SIGNING_KEY_FILE or EXPORT_SIGNING_KEY_FILE (shown once; keep it secret):

%s
Its public key (sha256 %s), for whoever verifies:

%s`, g.priv, g.fingerprint, g.pub)
		return err
	}
	return nil
}

func generate(c config.AuditctlKeys) (generated, error) {
	var g generated
	if c.Kind != "ed25519" {
		id := c.ID
		if id == "" {
			id = time.Now().UTC().Format("2006-01")
		}
		k, err := keyring.NewKey(id)
		if err != nil {
			return generated{}, err
		}
		g.hmac, g.entry = &k, keyring.Marshal(k)
	}
	if c.Kind != "hmac" {
		g.priv, g.pub = integrity.GenerateSigningKey()
		pub, err := integrity.ParsePublicKey(g.pub)
		if err != nil {
			return generated{}, err
		}
		g.fingerprint = integrity.KeyFingerprint(pub)
	}
	return g, nil
}

func (g generated) json() keysJSON {
	var j keysJSON
	if g.hmac != nil {
		j.HMAC = &hmacJSON{ID: g.hmac.ID, Secret: base64.StdEncoding.EncodeToString(g.hmac.Secret), Entry: string(g.entry)}
	}
	if g.priv != nil {
		j.Ed25519 = &ed25519JSON{PrivateKeyPEM: string(g.priv), PublicKeyPEM: string(g.pub), PublicKeySHA256: g.fingerprint}
	}
	return j
}

// writeKeyFiles writes the keys into c.Dir, secrets readable by their
// owner only; a file that exists is an error, or kept with --keep-existing.
func writeKeyFiles(c config.AuditctlKeys, g generated, out io.Writer) error {
	type file struct {
		name string
		data []byte
		mode fs.FileMode
	}
	var files []file
	if g.hmac != nil {
		files = append(files, file{"integrity-keys.yaml", g.entry, 0o600})
	}
	if g.priv != nil {
		files = append(files, file{c.Ed25519Name + ".pem", g.priv, 0o600}, file{c.Ed25519Name + ".pub.pem", g.pub, 0o644})
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	done := map[string]string{}
	for _, f := range files {
		path := filepath.Join(c.Dir, f.name)
		err := writeNew(path, f.data, f.mode)
		switch {
		case errors.Is(err, fs.ErrExist) && c.KeepExisting:
			done[path] = "kept"
		case errors.Is(err, fs.ErrExist):
			return fmt.Errorf("%s exists: keys are never overwritten (remove it, or pass --keep-existing to keep it)", path)
		case err != nil:
			return err
		default:
			done[path] = "written"
		}
	}
	if c.JSON {
		j := g.json()
		j.Files = done
		if j.HMAC != nil {
			j.HMAC.Secret, j.HMAC.Entry = "", ""
		}
		if j.Ed25519 != nil {
			j.Ed25519.PrivateKeyPEM = ""
		}
		return json.NewEncoder(out).Encode(j)
	}
	for _, f := range files {
		path := filepath.Join(c.Dir, f.name)
		if _, err := fmt.Fprintf(out, "%s %s\n", done[path], path); err != nil {
			return err
		}
	}
	return nil
}

// writeNew creates path with data, failing with fs.ErrExist if it exists.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return errors.Join(err, os.Remove(path))
	}
	return f.Close()
}
