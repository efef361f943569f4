// Package openapi holds the OpenAPI 3.0.3 document of the ingest-api HTTP
// API, served at GET /openapi.yaml.
//
// The document describes exactly what the server implements, no more and no
// less, and is checked by tests: the document itself, its examples and
// hand-written bad bodies are validated by openapitest, whose Load,
// ValidateRequestBody and ValidateResponse the server's tests use to check
// real HTTP traffic against it. When the server changes, this document
// changes with it. The validator lives in openapitest so that ingest-api,
// which only serves the document, does not link it.
package openapi

import (
	"bytes"
	_ "embed"
)

//go:embed openapi.yaml
var document []byte

// ContentType is the media type GET /openapi.yaml is served with.
const ContentType = "application/yaml"

// YAML returns the OpenAPI document as served at GET /openapi.yaml. The
// caller owns the returned slice.
func YAML() []byte {
	return bytes.Clone(document)
}
