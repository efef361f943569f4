// Package integrity owns auditstream's tamper evidence (SPEC 9): the
// canonical form of an event, the keyed hash chain over it, the verifier of
// a chain, the signed checkpoints that anchor chain heads outside the
// database, and the Ed25519 keys that sign checkpoints and exports. The
// writer, the API's verify-chain and export, and auditctl's offline checks
// all use this one implementation. It does no I/O except reading key files.
//
// # The chain
//
// Every event belongs to the chain of its correlation_id. The writer gives
// it, inside the batch's transaction and in storage order, the next
// chain_seq (1, 2, 3...), the previous event's event_hash as
// previous_event_hash (empty for chain_seq 1), hash_key_id and
// hash_version, and then
//
//	event_hash = HMAC-SHA256(key, previous_event_hash ‖ canonical(event))
//
// (Linker.Link). canonical(event) (AppendCanonical) covers every stored
// field but the two hashes and event_date, which PostgreSQL derives; its
// event_data is canonical JSON (AppendCanonicalJSON), which gives the same
// bytes for the client's JSON and for what jsonb returns.
//
// Keys (the HMAC keys of INTEGRITY_KEYS_FILE, in internal/keyring's format)
// link with the last key and verify with any, so rotation is adding a key.
// ChainVerifier checks a chain in chain_seq order in constant memory and
// names each break (BreakKind); without the keys (NewLinkVerifier) it
// checks the links alone, as a holder of a public key can. Given what
// retention removed (Retention) it tells a dropped partition from a
// deletion.
//
// # Checkpoints
//
// A Checkpoint records the heads of the chains that moved since the one
// before, with that one's hash, the time and an Ed25519 signature
// (SignCheckpoint, ParseCheckpoint, SignedCheckpoint.Verify): someone who
// can rewrite the database and holds the HMAC key still cannot rewrite
// history older than the last checkpoint unseen, as long as the signing key
// is elsewhere. The document is self-describing JSON; the signature covers
// its canonical JSON without the signature member.
//
// # Signed exports
//
// ExportWriter writes an export (ndjson, or the seed system's json shape)
// in constant memory, checking each event's chain as it goes, and ends it
// with metadata whose Ed25519 signature covers the SHA-256 of every byte
// before it; VerifyExport checks such a file offline (ExportMetadata
// describes the layout).
//
// # Signing keys
//
// Signer, LoadSigner, ParsePublicKey, MarshalPublicKey, PublicKeys and
// GenerateSigningKey handle PEM PKCS#8 Ed25519 private keys (as
// `openssl genpkey -algorithm ed25519` writes them) and PEM PKIX public
// keys, for CHECKPOINT_SIGNING_KEY_FILE and EXPORT_SIGNING_KEY_FILE.
package integrity
