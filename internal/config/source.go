package config

import "errors"

// Source is the key file of ingest-api and the writer that lets the writer
// believe the principal the API records on each Kafka record (SPEC 8.3).
// It is required: without it, every record would be stored as an
// unverified claim, which an operator must choose knowingly.
type Source struct {
	KeysFile        string `name:"source-keys-file" env:"SOURCE_KEYS_FILE" placeholder:"PATH" help:"YAML key file (keys: [{id, secret | secret_file}]) shared by ingest-api and the writer: the API signs each record's principal with the last key, the writer verifies with any."`
	SigningDisabled bool   `name:"source-signing-disabled" env:"SOURCE_SIGNING_DISABLED" help:"Run without SOURCE_KEYS_FILE: the API sends the principal unsigned and the writer stores every submitted_by as an unverified kafka:<name>."`
}

// Validate insists on a decision: a key file, or signing disabled.
func (s Source) Validate() error {
	switch {
	case s.KeysFile == "" && !s.SigningDisabled:
		return errors.New("SOURCE_KEYS_FILE is required (the key that proves submitted_by), or set SOURCE_SIGNING_DISABLED=true to store every submitted_by as an unverified kafka:<name>")
	case s.KeysFile != "" && s.SigningDisabled:
		return errors.New("SOURCE_KEYS_FILE and SOURCE_SIGNING_DISABLED=true contradict each other: choose one")
	}
	return nil
}
