package openapi_test

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api/openapi"
	"github.com/auditstream/auditstream/internal/audit"
)

// propertyOf is what the document must say of a field of each kind: its
// JSON type and format.
var propertyOf = map[audit.Kind]struct{ typ, format string }{
	audit.KindText:        {openapi3.TypeString, ""},
	audit.KindOptText:     {openapi3.TypeString, ""},
	audit.KindEnum:        {openapi3.TypeString, ""},
	audit.KindTimestamp:   {openapi3.TypeString, ""}, // a pattern in requests, date-time in responses
	audit.KindDate:        {openapi3.TypeString, "date"},
	audit.KindID:          {openapi3.TypeString, "uuid"},
	audit.KindOptUUID:     {openapi3.TypeString, "uuid"},
	audit.KindOptCount:    {openapi3.TypeInteger, "int64"},
	audit.KindObject:      {openapi3.TypeObject, ""},
	audit.KindOptHash:     {openapi3.TypeString, ""},
	audit.KindOptSmallInt: {openapi3.TypeInteger, "int32"},
	audit.KindOptAddr:     {openapi3.TypeString, ""},
	audit.KindFlag:        {openapi3.TypeBoolean, ""},
	audit.KindOptInt:      {openapi3.TypeInteger, "int32"},
}

// TestSchemasMatchFieldTable checks the served document against audit's
// field table: AuditEventRequest has exactly the Request fields with their
// rules, AuditEvent every field, and the query takes exactly the Filter
// fields as parameters.
func TestSchemasMatchFieldTable(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.YAML())
	require.NoError(t, err)
	schemas := doc.Components.Schemas
	request, stored := schemas["AuditEventRequest"].Value, schemas["AuditEvent"].Value

	var requestNames, requiredNames, storedNames, filterNames []string
	for _, f := range audit.EventFields() {
		want, ok := propertyOf[f.Kind]
		require.True(t, ok, "%s: no property rule for kind %d", f.Name, f.Kind)
		storedNames = append(storedNames, f.Name)
		if f.Filter {
			filterNames = append(filterNames, f.Name)
		}

		s := stored.Properties[f.Name]
		if assert.NotNil(t, s, "AuditEvent lacks %s", f.Name) {
			assert.True(t, s.Value.Type.Is(want.typ), "AuditEvent.%s type", f.Name)
			if want.format != "" {
				assert.Equal(t, want.format, s.Value.Format, "AuditEvent.%s format", f.Name)
			}
			optional := f.Kind == audit.KindOptText || f.Kind == audit.KindOptUUID || f.Kind == audit.KindOptCount ||
				f.Kind == audit.KindOptAddr || f.Kind == audit.KindOptInt || f.Kind == audit.KindOptHash || f.Kind == audit.KindOptSmallInt
			assert.Equal(t, optional, s.Value.Nullable, "AuditEvent.%s nullable", f.Name)
		}
		if f.Source != audit.Request {
			continue
		}

		requestNames = append(requestNames, f.Name)
		if f.Kind.Required() {
			requiredNames = append(requiredNames, f.Name)
		}
		p := request.Properties[f.Name]
		if !assert.NotNil(t, p, "AuditEventRequest lacks %s", f.Name) {
			continue
		}
		assert.True(t, p.Value.Type.Is(want.typ), "AuditEventRequest.%s type", f.Name)
		if want.format != "" {
			assert.Equal(t, want.format, p.Value.Format, "AuditEventRequest.%s format", f.Name)
		}
		switch f.Kind {
		case audit.KindText, audit.KindOptText, audit.KindOptAddr:
			if assert.NotNil(t, p.Value.MaxLength, "AuditEventRequest.%s maxLength", f.Name) {
				assert.EqualValues(t, f.MaxLen, *p.Value.MaxLength, "AuditEventRequest.%s maxLength", f.Name)
			}
			if f.Kind == audit.KindText {
				assert.EqualValues(t, 1, p.Value.MinLength, "AuditEventRequest.%s minLength", f.Name)
			}
		case audit.KindEnum:
			values := f.Values
			if values == nil {
				values = audit.DefaultCategories()
			}
			var enum []string
			for _, v := range p.Value.Enum {
				enum = append(enum, v.(string))
			}
			assert.Equal(t, values, enum, "AuditEventRequest.%s enum", f.Name)
		case audit.KindOptCount:
			if assert.NotNil(t, p.Value.Min, "AuditEventRequest.%s minimum", f.Name) {
				assert.Zero(t, *p.Value.Min, "AuditEventRequest.%s minimum", f.Name)
			}
		case audit.KindOptInt:
			if assert.NotNil(t, p.Value.Min, "AuditEventRequest.%s minimum", f.Name) &&
				assert.NotNil(t, p.Value.Max, "AuditEventRequest.%s maximum", f.Name) {
				assert.EqualValues(t, f.Min, *p.Value.Min, "AuditEventRequest.%s minimum", f.Name)
				assert.EqualValues(t, f.Max, *p.Value.Max, "AuditEventRequest.%s maximum", f.Name)
			}
		}
	}
	assert.ElementsMatch(t, requestNames, keys(request.Properties), "AuditEventRequest properties")
	assert.ElementsMatch(t, requiredNames, request.Required, "AuditEventRequest required")
	assert.ElementsMatch(t, storedNames, keys(stored.Properties), "AuditEvent properties")
	assert.ElementsMatch(t, storedNames, stored.Required, "AuditEvent: every member is always present")

	op := doc.Paths.Find("/api/v1/audit/events").Get
	var params []string
	for _, p := range op.Parameters {
		if p.Value.In == openapi3.ParameterInQuery {
			params = append(params, p.Value.Name)
		}
	}
	assert.ElementsMatch(t, append(filterNames, "detail_key", "detail_value", "since", "until", "limit", "offset", "cursor"), params)
	require.NoError(t, doc.Validate(context.Background()))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
