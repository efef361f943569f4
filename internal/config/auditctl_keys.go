package config

// AuditctlKeys generates keys.
type AuditctlKeys struct {
	ID           string `name:"id" placeholder:"ID" help:"Id of the HMAC key: letters, digits, '.', '_', '-' (default: the current month, e.g. 2025-06)."`
	Kind         string `name:"kind" enum:"both,hmac,ed25519" default:"both" help:"What to generate: both, hmac or ed25519."`
	Dir          string `name:"dir" placeholder:"DIR" help:"Write the keys into files in DIR (integrity-keys.yaml, <ed25519-name>.pem, <ed25519-name>.pub.pem) instead of printing them."`
	Ed25519Name  string `name:"ed25519-name" default:"checkpoint-signing-key" help:"Base name of the Ed25519 files that --dir writes (e.g. export-signing-key)."`
	KeepExisting bool   `name:"keep-existing" help:"With --dir: leave a file that exists as it is, instead of failing (an init container that runs at every start)."`
	JSON         bool   `name:"json" env:"AUDITCTL_JSON" help:"Print one JSON object instead of text."`
}

// Help implements kong.HelpProvider.
func (AuditctlKeys) Help() string {
	return `Generates an HMAC key (32 random bytes, base64) as an INTEGRITY_KEYS_FILE
entry, and an Ed25519 key pair as PEM (PKCS#8 private key, PKIX public key),
the format of 'openssl genpkey -algorithm ed25519'. The private keys are
printed or written once: keep them in a secret store. Rotating the HMAC key
is adding the new entry at the end of keys: (the last one links new events,
the others keep verifying); give the public key to whoever verifies
checkpoints or exports.

Examples:
  auditctl keys
  auditctl keys --kind hmac --id 2025-06 >> new-entry.yaml
  auditctl keys --dir /run/secrets/auditstream
  auditctl keys --kind ed25519 --dir . --ed25519-name export-signing-key
  auditctl keys --json | jq -r .ed25519.public_key_pem`
}
