package config

// Auditctl configures cmd/auditctl: one struct per subcommand (issue 17
// adds token, issue 11 keys, verify and verify-export).
type Auditctl struct {
	Keys AuditctlKeys `cmd:"" help:"Generate integrity keys: an HMAC key for INTEGRITY_KEYS_FILE and an Ed25519 key pair for CHECKPOINT_SIGNING_KEY_FILE or EXPORT_SIGNING_KEY_FILE."`
}
