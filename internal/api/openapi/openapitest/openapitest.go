// Package openapitest checks documents and HTTP traffic against the
// ingest-api's OpenAPI document (internal/api/openapi) with kin-openapi.
// Only tests import it: the binary serves the document and never validates
// against it.
package openapitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/auditstream/auditstream/internal/api/openapi"
)

// uuidFormat accepts the canonical 8-4-4-4-12 hexadecimal form of a UUID of
// any version (the API assigns UUIDv7; clients may send any version).
var uuidFormat = openapi3.NewRegexpFormatValidator(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Load parses the embedded document and validates it as OpenAPI 3.0.3. The
// returned document checks `format: uuid` strings (document-scoped, no global
// state is changed); `format: date-time` uses kin-openapi's RFC 3339
// validator. Each call returns a fresh document.
func Load(ctx context.Context) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.YAML())
	if err != nil {
		return nil, fmt.Errorf("openapi: parse document: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi: invalid document: %w", err)
	}
	doc.SetStringFormatValidator("uuid", uuidFormat)
	return doc, nil
}

// SchemaOptions returns the options to validate values against doc's schemas
// with doc's format validators, reporting every error.
func SchemaOptions(doc *openapi3.T, extra ...openapi3.SchemaValidationOption) []openapi3.SchemaValidationOption {
	opts := append(doc.GetSchemaValidationOptions(), openapi3.MultiErrors())
	return append(opts, extra...)
}

// Operation returns the operation documented for method and a request path
// as sent, such as "/api/v1/audit/events?limit=5" or
// "/api/v1/audit/events/0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b": a query
// string is ignored, and a path template segment such as "{event_id}"
// matches any one non-empty segment. A literal path is preferred over a
// template; a template is also tried when the literal path does not
// document method (the server routes GET /api/v1/audit/events/batch to
// GET /api/v1/audit/events/{event_id}).
func Operation(doc *openapi3.T, method, path string) (*openapi3.Operation, error) {
	path, _, _ = strings.Cut(path, "?")
	items := pathItems(doc, path)
	if len(items) == 0 {
		return nil, fmt.Errorf("openapi: path %s is not documented", path)
	}
	for _, item := range items {
		if op := item.GetOperation(strings.ToUpper(method)); op != nil {
			return op, nil
		}
	}
	return nil, fmt.Errorf("openapi: %s %s is not documented", method, path)
}

// pathItems returns the path items matching path: the literal one first,
// then the templated ones, fewest template segments first (kin-openapi's
// matching order).
func pathItems(doc *openapi3.T, path string) []*openapi3.PathItem {
	var items []*openapi3.PathItem
	if item := doc.Paths.Value(path); item != nil {
		items = append(items, item)
	}
	segs := strings.Split(path, "/")
	for _, key := range doc.Paths.InMatchingOrder() {
		if !strings.Contains(key, "{") {
			continue
		}
		tmpl := strings.Split(key, "/")
		if len(tmpl) != len(segs) {
			continue
		}
		match := true
		for i, t := range tmpl {
			if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
				match = segs[i] != ""
			} else {
				match = t == segs[i]
			}
			if !match {
				break
			}
		}
		if match {
			items = append(items, doc.Paths.Value(key))
		}
	}
	return items
}

// ValidateRequestBody checks a JSON request body against the schema
// documented for method and path.
func ValidateRequestBody(doc *openapi3.T, method, path string, body []byte) error {
	op, err := Operation(doc, method, path)
	if err != nil {
		return err
	}
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		if len(body) > 0 {
			return fmt.Errorf("openapi: %s %s documents no request body", method, path)
		}
		return nil
	}
	mt := op.RequestBody.Value.Content["application/json"]
	if mt == nil || mt.Schema == nil {
		return fmt.Errorf("openapi: %s %s documents no application/json request body", method, path)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("openapi: request body is not JSON: %w", err)
	}
	return mt.Schema.Value.VisitJSON(v, SchemaOptions(doc, openapi3.VisitAsRequest())...)
}

// ValidateResponse checks a real HTTP response against the document: the
// status must be documented for the operation, every required response
// header must be present and match its schema, the Content-Type must be one
// the response documents, and a JSON body must match its schema. It returns
// all problems found, joined.
func ValidateResponse(doc *openapi3.T, method, path string, status int, header http.Header, body []byte) error {
	op, err := Operation(doc, method, path)
	if err != nil {
		return err
	}
	ref := op.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("openapi: %s %s does not document status %d", method, path, status)
	}
	resp := ref.Value
	var errs []error

	for name, h := range resp.Headers {
		if h == nil || h.Value == nil {
			continue
		}
		values := header.Values(name)
		if len(values) == 0 {
			if h.Value.Required {
				errs = append(errs, fmt.Errorf("openapi: %d response lacks required header %s", status, name))
			}
			continue
		}
		if err := validateHeader(doc, h.Value, values[0]); err != nil {
			errs = append(errs, fmt.Errorf("openapi: header %s: %w", name, err))
		}
	}

	if len(resp.Content) == 0 {
		if len(body) > 0 {
			errs = append(errs, fmt.Errorf("openapi: %d response documents no body", status))
		}
		return errors.Join(errs...)
	}
	mediaType, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		errs = append(errs, fmt.Errorf("openapi: response Content-Type %q: %w", header.Get("Content-Type"), err))
		return errors.Join(errs...)
	}
	mt := resp.Content[mediaType]
	if mt == nil {
		errs = append(errs, fmt.Errorf("openapi: %d response documents no %s content (documented: %s)",
			status, mediaType, strings.Join(contentTypes(resp.Content), ", ")))
		return errors.Join(errs...)
	}
	if mt.Schema == nil || mt.Schema.Value == nil {
		return errors.Join(errs...)
	}
	var v any
	if isJSON(mediaType) {
		if err := json.Unmarshal(body, &v); err != nil {
			errs = append(errs, fmt.Errorf("openapi: %d response body is not JSON: %w", status, err))
			return errors.Join(errs...)
		}
	} else {
		v = string(body)
	}
	if err := mt.Schema.Value.VisitJSON(v, SchemaOptions(doc, openapi3.VisitAsResponse())...); err != nil {
		errs = append(errs, fmt.Errorf("openapi: %d response body: %w", status, err))
	}
	return errors.Join(errs...)
}

func validateHeader(doc *openapi3.T, h *openapi3.Header, raw string) error {
	if h.Schema == nil || h.Schema.Value == nil {
		return nil
	}
	schema := h.Schema.Value
	var v any = raw
	if schema.Type.Is(openapi3.TypeInteger) {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", raw)
		}
		v = float64(n)
	}
	return schema.VisitJSON(v, SchemaOptions(doc)...)
}

func isJSON(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

func contentTypes(c openapi3.Content) []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}
