package openapitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api/openapi"
)

func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := Load(context.Background())
	require.NoError(t, err)
	return doc
}

func TestDocumentIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.YAML())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))

	assert.Equal(t, "3.0.3", doc.OpenAPI)
	assert.Equal(t, "auditstream ingest API", doc.Info.Title)
	assert.Equal(t, "0.1.0", doc.Info.Version)
	require.Len(t, doc.Servers, 1)
	assert.Equal(t, "http://localhost:8080", doc.Servers[0].URL)
	assert.Contains(t, doc.Info.Description, "describes exactly what the server implements")
}

func TestYAMLReturnsCopy(t *testing.T) {
	a := openapi.YAML()
	a[0] = 'X'
	assert.NotEqual(t, a[0], openapi.YAML()[0])
}

func TestOperations(t *testing.T) {
	doc := loadDoc(t)

	type op struct {
		method, path, id, tag string
		statuses              []string
	}
	want := []op{
		{http.MethodPost, "/api/v1/audit/events", "createAuditEvent", "Audit Write API",
			[]string{"201", "202", "400", "401", "403", "413", "415", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/events", "queryAuditEvents", "Audit Write API",
			[]string{"200", "400", "401", "403", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/events/{event_id}", "getAuditEvent", "Audit Write API",
			[]string{"200", "400", "401", "403", "404", "429", "500", "503"}},
		{http.MethodPost, "/api/v1/audit/events/batch", "createAuditEventsBatch", "Audit Write API",
			[]string{"201", "202", "400", "401", "403", "413", "415", "429", "500", "503"}},
		{http.MethodPost, "/api/v1/audit/notifications", "createNotificationAudit", "Audit Write API",
			[]string{"201", "202", "400", "401", "403", "409", "413", "415", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/events/histogram", "getAuditEventsHistogram", "Audit Write API",
			[]string{"200", "400", "401", "403", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/whoami", "getWhoAmI", "Audit Write API", []string{"200", "401", "429"}},
		{http.MethodPost, "/api/v1/audit/legal-hold", "placeLegalHold", "Legal Hold",
			[]string{"200", "400", "401", "403", "404", "409", "413", "415", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/legal-hold", "listLegalHolds", "Legal Hold",
			[]string{"200", "401", "403", "429", "500", "503"}},
		{http.MethodDelete, "/api/v1/audit/legal-hold/{correlation_id}", "releaseLegalHold", "Legal Hold",
			[]string{"200", "400", "401", "403", "404", "413", "415", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/health", "getHealthDetails", "Operations", []string{"200", "401", "403", "429", "503"}},
		{http.MethodPost, "/api/v1/audit/verify-chain", "verifyChain", "Integrity",
			[]string{"200", "400", "401", "403", "404", "413", "415", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/export", "exportAuditEvents", "Integrity", []string{"200", "400", "401", "403", "429", "500", "503"}},
		{http.MethodGet, "/api/v1/audit/checkpoints/public-key", "getCheckpointPublicKey", "Integrity", []string{"200", "503"}},
		{http.MethodGet, "/health", "getHealth", "Operations", []string{"200", "503"}},
		{http.MethodGet, "/health/live", "getLiveness", "Operations", []string{"200"}},
		{http.MethodGet, "/health/ready", "getReadiness", "Operations", []string{"200", "503"}},
		{http.MethodGet, "/openapi.yaml", "getOpenAPIDocument", "Operations", []string{"200"}},
	}

	total := 0
	for _, item := range doc.Paths.Map() {
		total += len(item.Operations())
	}
	assert.Equal(t, len(want), total, "the document has operations the server does not implement")

	for _, w := range want {
		t.Run(w.id, func(t *testing.T) {
			o, err := Operation(doc, w.method, w.path)
			require.NoError(t, err)
			assert.Equal(t, w.id, o.OperationID)
			assert.Equal(t, []string{w.tag}, o.Tags)
			got := o.Responses.Keys()
			sort.Strings(got)
			assert.Equal(t, w.statuses, got)

			// X-Request-ID: optional request header, required response header.
			var found bool
			for _, p := range o.Parameters {
				if p.Value.In == openapi3.ParameterInHeader && p.Value.Name == "X-Request-ID" {
					found = true
					assert.False(t, p.Value.Required)
				}
			}
			assert.True(t, found, "X-Request-ID request header")
			for code, r := range o.Responses.Map() {
				h := r.Value.Headers["X-Request-ID"]
				if assert.NotNil(t, h, "X-Request-ID header on %s", code) {
					assert.True(t, h.Value.Required)
				}
				if strings.HasPrefix(code, "4") || (strings.HasPrefix(code, "5") && w.tag != "Operations") {
					mt := r.Value.Content["application/problem+json"]
					if assert.NotNil(t, mt, "%s is a problem", code) {
						assert.Equal(t, "#/components/schemas/RFC7807Problem", mt.Schema.Ref)
					}
				}
			}
		})
	}
}

// TestOperationLookup checks that Operation resolves request paths as sent:
// query strings are ignored and path templates match one segment.
func TestOperationLookup(t *testing.T) {
	doc := loadDoc(t)
	found := map[string]string{
		"GET /api/v1/audit/events":                                          "queryAuditEvents",
		"GET /api/v1/audit/events?limit=5&since=24h":                        "queryAuditEvents",
		"POST /api/v1/audit/events":                                         "createAuditEvent",
		"GET /api/v1/audit/events/0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b":     "getAuditEvent",
		"GET /api/v1/audit/events/not-a-uuid":                               "getAuditEvent",
		"get /api/v1/audit/events/{event_id}":                               "getAuditEvent",
		"POST /api/v1/audit/events/batch":                                   "createAuditEventsBatch",
		"GET /api/v1/audit/events/batch":                                    "getAuditEvent", // as the server routes it
		"GET /api/v1/audit/events/0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b?x=1": "getAuditEvent",
	}
	for req, id := range found {
		method, path, _ := strings.Cut(req, " ")
		o, err := Operation(doc, method, path)
		if assert.NoError(t, err, req) {
			assert.Equal(t, id, o.OperationID, req)
		}
	}
	for _, req := range []string{
		"GET /api/v1/audit/events/",
		"GET /api/v1/audit/events/a/b",
		"DELETE /api/v1/audit/events/0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b",
		"GET /api/v1/audit/notifications",
		"GET /api/v1/nope",
	} {
		method, path, _ := strings.Cut(req, " ")
		_, err := Operation(doc, method, path)
		if assert.Error(t, err, req) {
			assert.Contains(t, err.Error(), "not documented", req)
		}
	}
}

// TestReadOperations checks the parameters and responses of the read
// endpoints (SPEC 2.5) in detail.
func TestReadOperations(t *testing.T) {
	doc := loadDoc(t)
	const problem = "#/components/schemas/RFC7807Problem"

	q, err := Operation(doc, http.MethodGet, "/api/v1/audit/events")
	require.NoError(t, err)
	params := map[string]*openapi3.Parameter{}
	var names []string
	for _, p := range q.Parameters {
		if p.Value.In == openapi3.ParameterInQuery {
			params[p.Value.Name] = p.Value
			names = append(names, p.Value.Name)
			assert.False(t, p.Value.Required, p.Value.Name)
			assert.True(t, p.Value.Schema.Value.Type.Is(openapi3.TypeString) ||
				p.Value.Schema.Value.Type.Is(openapi3.TypeInteger), p.Value.Name)
		}
	}
	assert.ElementsMatch(t, []string{"event_type", "event_category", "event_outcome", "severity",
		"correlation_id", "actor_id", "resource_type", "resource_id", "namespace", "detail_key", "detail_value",
		"since", "until", "limit", "offset", "cursor"}, names)

	assert.ElementsMatch(t, []any{"success", "failure", "pending"}, params["event_outcome"].Schema.Value.Enum)
	limit := params["limit"].Schema.Value
	assert.True(t, limit.Type.Is(openapi3.TypeInteger))
	require.NotNil(t, limit.Min)
	require.NotNil(t, limit.Max)
	assert.Equal(t, 1.0, *limit.Min)
	assert.Equal(t, 1000.0, *limit.Max)
	assert.EqualValues(t, 50, limit.Default)
	offset := params["offset"].Schema.Value
	assert.True(t, offset.Type.Is(openapi3.TypeInteger))
	require.NotNil(t, offset.Min)
	assert.Equal(t, 0.0, *offset.Min)
	assert.Nil(t, offset.Max)
	assert.EqualValues(t, 0, offset.Default)
	for _, words := range []string{"`QUERY_MAX_OFFSET`", "10000", "`cursor`", "400"} {
		assert.Contains(t, params["offset"].Description, words)
	}
	for _, words := range []string{"`QUERY_MAX_PAGE_BYTES`", "8 MiB", "`has_more`", "`next_cursor`", "fewer than `limit`", "`HTTP_WRITE_TIMEOUT`"} {
		assert.Contains(t, q.Description, words)
	}
	for _, name := range []string{"since", "until"} {
		d := params[name].Description
		for _, form := range []string{"30m", "24h", "7d", "1.5d", "RFC 3339", "`2006-01-02T15:04:05`", "`2006-01-02`", "UTC", "midnight", "inclusive"} {
			assert.Contains(t, d, form, name)
		}
	}
	assert.Contains(t, params["cursor"].Description, "pagination.next_cursor")
	assert.Contains(t, params["cursor"].Description, "offset")
	for _, name := range []string{"actor_id", "resource_type", "resource_id", "namespace", "cursor"} {
		assert.Contains(t, params[name].Description, "auditstream extension", name)
	}
	assert.Contains(t, q.Description, "`event_timestamp` descending, then\n`event_id` descending")

	g, err := Operation(doc, http.MethodGet, "/api/v1/audit/events/{event_id}")
	require.NoError(t, err)
	var idParam *openapi3.Parameter
	for _, p := range g.Parameters {
		if p.Value.In == openapi3.ParameterInPath {
			require.Nil(t, idParam, "one path parameter")
			idParam = p.Value
		}
	}
	require.NotNil(t, idParam)
	assert.Equal(t, "event_id", idParam.Name)
	assert.True(t, idParam.Required)
	assert.Equal(t, "uuid", idParam.Schema.Value.Format)

	ref := func(o *openapi3.Operation, status, ct string) *openapi3.MediaType {
		r := o.Responses.Value(status)
		require.NotNil(t, r, status)
		mt := r.Value.Content[ct]
		require.NotNil(t, mt, "%s %s", status, ct)
		return mt
	}
	assert.Equal(t, "#/components/schemas/AuditEventsQueryResponse", ref(q, "200", "application/json").Schema.Ref)
	assert.Equal(t, "#/components/schemas/AuditEvent", ref(g, "200", "application/json").Schema.Ref)
	for _, o := range []*openapi3.Operation{q, g} {
		for _, code := range []string{"400", "500", "503"} {
			assert.Equal(t, problem, ref(o, code, "application/problem+json").Schema.Ref, "%s %s", o.OperationID, code)
		}
		h := o.Responses.Value("503").Value.Headers["Retry-After"]
		require.NotNil(t, h, o.OperationID)
		assert.True(t, h.Value.Required)
		assert.True(t, h.Value.Schema.Value.Type.Is(openapi3.TypeInteger))
		assert.Contains(t, *o.Responses.Value("503").Value.Description, "`database-unavailable`")
		assert.Contains(t, *o.Responses.Value("400").Value.Description, "`invalid-query-parameter`")
	}
	assert.Equal(t, problem, ref(g, "404", "application/problem+json").Schema.Ref)
	assert.Contains(t, *g.Responses.Value("404").Value.Description, "`not-found`")
	assert.Contains(t, *g.Responses.Value("400").Value.Description, "field_errors.event_id")
	ex := ref(g, "400", "application/problem+json").Example.(map[string]any)
	assert.Equal(t, "https://auditstream.dev/problems/invalid-query-parameter", ex["type"])
	assert.Contains(t, ex["field_errors"], "event_id")
}

// TestSeedQueryCompatibility checks the query operation against the seed's
// reconstruction: same operationId and path, every seed parameter with the
// same schema, every seed response member present and required where the
// seed requires it.
func TestSeedQueryCompatibility(t *testing.T) {
	seed, err := openapi3.NewLoader().LoadFromFile("../../../seedclient/seed-openapi.yaml")
	require.NoError(t, err)
	// The seed's example date-times lack seconds ("2025-12-13T02:00Z"), which
	// format: date-time rejects; the examples are not what is compared here.
	require.NoError(t, seed.Validate(context.Background(), openapi3.DisableExamplesValidation()))
	doc := loadDoc(t)

	seedOp := seed.Paths.Value("/api/v1/audit/events").Get
	require.NotNil(t, seedOp)
	op, err := Operation(doc, http.MethodGet, "/api/v1/audit/events")
	require.NoError(t, err)
	assert.Equal(t, seedOp.OperationID, op.OperationID)
	assert.Equal(t, seedOp.Tags, op.Tags)
	for _, sp := range seedOp.Parameters {
		p := op.Parameters.GetByInAndName(sp.Value.In, sp.Value.Name)
		if !assert.NotNil(t, p, sp.Value.Name) {
			continue
		}
		ss, s := sp.Value.Schema.Value, p.Schema.Value
		assert.Equal(t, sp.Value.Required, p.Required, sp.Value.Name)
		assert.Equal(t, ss.Type, s.Type, sp.Value.Name)
		assert.Equal(t, ss.Enum, s.Enum, sp.Value.Name)
		assert.Equal(t, ss.Default, s.Default, sp.Value.Name)
		assert.Equal(t, ss.Min, s.Min, sp.Value.Name)
		assert.Equal(t, ss.Max, s.Max, sp.Value.Name)
	}
	seedResp := seedOp.Responses.Value("200").Value.Content["application/json"].Schema
	resp := op.Responses.Value("200").Value.Content["application/json"].Schema
	assert.Equal(t, seedResp.Ref, resp.Ref)

	// Every member of the seed's schemas is in ours with the same type, and
	// required where the seed requires it.
	flatten := func(s *openapi3.Schema) (map[string]*openapi3.Schema, []string) {
		props := map[string]*openapi3.Schema{}
		var req []string
		for _, part := range append([]*openapi3.SchemaRef{{Value: s}}, s.AllOf...) {
			for name, p := range part.Value.Properties {
				props[name] = p.Value
			}
			req = append(req, part.Value.Required...)
		}
		return props, req
	}
	for _, name := range []string{"AuditEventsQueryResponse", "Pagination", "AuditEvent"} {
		sp, sreq := flatten(seed.Components.Schemas[name].Value)
		ours := doc.Components.Schemas[name]
		require.NotNil(t, ours, name)
		op, oreq := flatten(ours.Value)
		for member, s := range sp {
			o := op[member]
			if !assert.NotNil(t, o, "%s.%s", name, member) {
				continue
			}
			assert.Equal(t, s.Type, o.Type, "%s.%s", name, member)
			if s.Type.Is(openapi3.TypeString) { // integers may add format: int64
				assert.Equal(t, s.Format, o.Format, "%s.%s", name, member)
			}
			if s.Nullable {
				assert.True(t, o.Nullable, "%s.%s", name, member)
			}
		}
		assert.Subset(t, oreq, sreq, name)
	}
}

func TestResponseDetails(t *testing.T) {
	doc := loadDoc(t)
	schemaRef := func(method, path, status, ct string) string {
		o, err := Operation(doc, method, path)
		require.NoError(t, err)
		r := o.Responses.Value(status)
		require.NotNil(t, r, "%s %s %s", method, path, status)
		mt := r.Value.Content[ct]
		require.NotNil(t, mt, "%s %s %s %s", method, path, status, ct)
		return mt.Schema.Ref
	}
	const schemas = "#/components/schemas/"
	assert.Equal(t, schemas+"AuditEventResponse", schemaRef("POST", "/api/v1/audit/events", "201", "application/json"))
	assert.Equal(t, schemas+"AuditEventResponse", schemaRef("POST", "/api/v1/audit/events", "202", "application/json"))
	assert.Equal(t, schemas+"BatchAuditEventResponse", schemaRef("POST", "/api/v1/audit/events/batch", "201", "application/json"))
	assert.Equal(t, schemas+"NotificationAuditResponse", schemaRef("POST", "/api/v1/audit/notifications", "201", "application/json"))
	_, err := Operation(doc, "GET", "/metrics")
	assert.ErrorContains(t, err, "not documented", "/metrics is served on METRICS_ADDR, not by this API")
	assert.Equal(t, "", schemaRef("GET", "/openapi.yaml", "200", openapi.ContentType))

	// 503 on write endpoints carries Retry-After (integer seconds).
	for _, p := range []string{"/api/v1/audit/events", "/api/v1/audit/events/batch", "/api/v1/audit/notifications"} {
		o, err := Operation(doc, "POST", p)
		require.NoError(t, err)
		h := o.Responses.Value("503").Value.Headers["Retry-After"]
		require.NotNil(t, h, p)
		assert.True(t, h.Value.Required)
		assert.True(t, h.Value.Schema.Value.Type.Is(openapi3.TypeInteger))

		body := o.RequestBody.Value.Content["application/json"].Schema
		require.NotNil(t, body)
		assert.True(t, o.RequestBody.Value.Required)
		if p == "/api/v1/audit/events/batch" {
			assert.True(t, body.Value.Type.Is(openapi3.TypeArray))
			assert.Equal(t, uint64(1), body.Value.MinItems)
			require.NotNil(t, body.Value.MaxItems)
			assert.Equal(t, uint64(5000), *body.Value.MaxItems)
			assert.Equal(t, schemas+"AuditEventRequest", body.Value.Items.Ref)
		}
	}

	// Every problem kind is listed in the RFC7807Problem description.
	desc := doc.Components.Schemas["RFC7807Problem"].Value.Description
	for _, kind := range []string{
		"validation-error", "malformed-request", "payload-too-large", "unsupported-media-type",
		"duplicate-notification", "kafka-unavailable", "spool-full", "spool-unavailable", "not-found", "method-not-allowed",
		"internal-error", "invalid-query-parameter", "database-unavailable", "integrity-not-configured", "export-busy",
	} {
		assert.Contains(t, desc, "`"+kind+"`")
	}
	assert.Contains(t, desc, "https://auditstream.dev/problems/<kind>")
}

func TestSchemaRules(t *testing.T) {
	doc := loadDoc(t)
	s := func(name string) *openapi3.Schema {
		ref := doc.Components.Schemas[name]
		require.NotNil(t, ref, name)
		return ref.Value
	}
	for _, name := range []string{"AuditEventRequest", "AuditEventResponse", "BatchAuditEventResponse",
		"NotificationAudit", "NotificationAuditResponse", "RFC7807Problem",
		"AuditEvent", "Pagination", "AuditEventsQueryResponse"} {
		s(name)
	}

	// AuditEvent: every request field plus event_id, event_date,
	// submitted_by and the hash chain's fields, all always present; the
	// optional ones nullable.
	ae := s("AuditEvent")
	var reqFields []string
	for name := range s("AuditEventRequest").Properties {
		reqFields = append(reqFields, name)
	}
	chain := []string{"chain_seq", "previous_event_hash", "event_hash", "hash_key_id", "hash_version"}
	assert.ElementsMatch(t, append(append(reqFields, "event_date", "submitted_by"), chain...), ae.Required)
	assert.Len(t, ae.Properties, len(ae.Required))
	assert.NotContains(t, reqFields, "submitted_by", "never from the request")
	for _, field := range chain {
		assert.NotContains(t, reqFields, field, "never from the request")
	}
	for _, field := range append([]string{"actor_type", "actor_id", "resource_type", "resource_id", "parent_event_id",
		"namespace", "cluster_name", "severity", "duration_ms", "actor_ip", "cluster_id", "error_code", "error_message",
		"retention_days", "submitted_by"}, chain...) {
		assert.True(t, ae.Properties[field].Value.Nullable, field)
	}
	for _, field := range []string{"event_id", "version", "event_type", "event_timestamp", "event_date",
		"event_category", "event_action", "event_outcome", "correlation_id", "is_sensitive", "event_data"} {
		assert.False(t, ae.Properties[field].Value.Nullable, field)
	}
	assert.Equal(t, "uuid", ae.Properties["event_id"].Value.Format)
	assert.Equal(t, "uuid", ae.Properties["parent_event_id"].Value.Format)
	assert.Equal(t, "date", ae.Properties["event_date"].Value.Format)
	assert.Equal(t, "date-time", ae.Properties["event_timestamp"].Value.Format)
	assert.Contains(t, ae.Properties["event_timestamp"].Value.Description, "UTC")
	assert.Len(t, ae.Properties["event_outcome"].Value.Enum, 3)
	assert.True(t, ae.Properties["event_data"].Value.Type.Is(openapi3.TypeObject))

	pg := s("Pagination")
	assert.ElementsMatch(t, []string{"limit", "offset", "total", "has_more", "total_exact"}, pg.Required)
	assert.Contains(t, pg.Properties, "next_cursor")
	assert.True(t, pg.Properties["has_more"].Value.Type.Is(openapi3.TypeBoolean))
	assert.True(t, pg.Properties["total_exact"].Value.Type.Is(openapi3.TypeBoolean))
	for _, words := range []string{"`QUERY_COUNT_CAP`", "10000", "`total_exact`", "lower bound", "`has_more` is always exact"} {
		assert.Contains(t, pg.Description, words)
	}
	qr := s("AuditEventsQueryResponse")
	assert.ElementsMatch(t, []string{"data", "pagination"}, qr.Required)
	assert.Equal(t, "#/components/schemas/AuditEvent", qr.Properties["data"].Value.Items.Ref)
	assert.Equal(t, "#/components/schemas/Pagination", qr.Properties["pagination"].Ref)
	assert.Contains(t, qr.Description, "`event_timestamp` descending")
	assert.Contains(t, qr.Description, "`event_id` descending")

	ev := s("AuditEventRequest")
	assert.ElementsMatch(t, []string{"version", "event_type", "event_timestamp", "event_category",
		"event_action", "event_outcome", "correlation_id", "event_data"}, ev.Required)
	maxLen := map[string]uint64{"version": 20, "event_type": 100, "event_action": 50, "correlation_id": 255,
		"actor_type": 255, "actor_id": 255, "resource_type": 255, "resource_id": 255,
		"namespace": 255, "cluster_name": 255, "severity": 50}
	for field, n := range maxLen {
		p := ev.Properties[field].Value
		require.NotNil(t, p.MaxLength, field)
		assert.Equal(t, n, *p.MaxLength, field)
	}
	for _, field := range []string{"parent_event_id", "namespace", "cluster_name", "severity", "duration_ms"} {
		assert.True(t, ev.Properties[field].Value.Nullable, field)
	}
	for _, field := range []string{"event_id", "parent_event_id"} {
		assert.Equal(t, "uuid", ev.Properties[field].Value.Format, field)
	}
	assert.Len(t, ev.Properties["event_category"].Value.Enum, 7)
	assert.True(t, ev.Properties["event_data"].Value.Type.Is(openapi3.TypeObject))
	assert.False(t, ev.Properties["event_data"].Value.Nullable)

	n := s("NotificationAudit")
	assert.ElementsMatch(t, []string{"remediation_id", "notification_id", "recipient", "channel",
		"message_summary", "status", "sent_at"}, n.Required)
	assert.True(t, n.Properties["delivery_status"].Value.Nullable)
	assert.True(t, n.Properties["error_message"].Value.Nullable)

	p := s("RFC7807Problem")
	assert.Equal(t, "uri", p.Properties["type"].Value.Format)
	assert.True(t, p.Properties["status"].Value.Type.Is(openapi3.TypeInteger))
	assert.True(t, p.Properties["field_errors"].Value.AdditionalProperties.Schema.Value.Type.Is(openapi3.TypeString))
}

// TestExamples validates every example in the document (schema, property,
// media type, parameter and header examples) against its schema.
func TestExamples(t *testing.T) {
	doc := loadDoc(t)
	opts := SchemaOptions(doc)
	checked := 0

	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, ref *openapi3.SchemaRef)
	walk = func(where string, ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Example != nil {
			checked++
			assert.NoError(t, s.VisitJSON(s.Example, opts...), "example of %s", where)
		}
		for name, p := range s.Properties {
			walk(where+"."+name, p)
		}
		if s.Items != nil {
			walk(where+"[]", s.Items)
		}
		for i, sub := range s.AllOf {
			walk(fmt.Sprintf("%s.allOf[%d]", where, i), sub)
		}
		if s.AdditionalProperties.Schema != nil {
			walk(where+".*", s.AdditionalProperties.Schema)
		}
	}
	for name, ref := range doc.Components.Schemas {
		walk(name, ref)
	}

	media := func(where string, mt *openapi3.MediaType) {
		if mt.Schema == nil {
			return
		}
		walk(where, mt.Schema)
		if mt.Example != nil {
			checked++
			assert.NoError(t, mt.Schema.Value.VisitJSON(mt.Example, opts...), where)
		}
		for name, ex := range mt.Examples {
			checked++
			assert.NoError(t, mt.Schema.Value.VisitJSON(ex.Value.Value, opts...), "%s example %s", where, name)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			for _, p := range op.Parameters {
				if p.Ref == "" && p.Value.Example != nil { // components are checked below
					checked++
					assert.NoError(t, p.Value.Schema.Value.VisitJSON(p.Value.Example, opts...), "%s parameter %s", where, p.Value.Name)
				}
			}
			if op.RequestBody != nil {
				for ct, mt := range op.RequestBody.Value.Content {
					media(where+" request "+ct, mt)
				}
			}
			for code, r := range op.Responses.Map() {
				for ct, mt := range r.Value.Content {
					media(where+" "+code+" "+ct, mt)
				}
			}
		}
	}
	for name, p := range doc.Components.Parameters {
		if p.Value.Example != nil {
			checked++
			v := p.Value.Example
			if i, ok := v.(int); ok { // YAML integers decode as int
				v = float64(i)
			}
			assert.NoError(t, p.Value.Schema.Value.VisitJSON(v, opts...), "parameter %s", name)
		}
	}
	for name, h := range doc.Components.Headers {
		if h.Value.Example != nil {
			checked++
			v := h.Value.Example
			if i, ok := v.(int); ok { // YAML integers decode as int
				v = float64(i)
			}
			assert.NoError(t, h.Value.Schema.Value.VisitJSON(v, opts...), "header %s", name)
		}
	}
	assert.Greater(t, checked, 75, "examples checked")

	// The seed's own example values are in the document.
	ev := doc.Components.Schemas["AuditEventRequest"].Value.Example.(map[string]any)
	assert.Equal(t, "2025-12-13T02:00Z", ev["event_timestamp"])
	assert.Equal(t, "rr-2025-001", ev["correlation_id"])
	na := doc.Components.Schemas["NotificationAudit"].Value.Example.(map[string]any)
	assert.Equal(t, "2025-11-03T12:00Z", na["sent_at"])
}

const seedEvent = `{
  "version": "1.0",
  "event_type": "gateway.signal.received",
  "event_timestamp": "2025-12-13T02:00Z",
  "event_category": "gateway",
  "event_action": "received",
  "event_outcome": "success",
  "actor_type": "service",
  "actor_id": "gateway-service",
  "resource_type": "Signal",
  "resource_id": "fp-abc123",
  "correlation_id": "rr-2025-001",
  "parent_event_id": null,
  "namespace": null,
  "cluster_name": "cluster_name_example",
  "severity": null,
  "duration_ms": 1,
  "event_data": {}
}`

const seedNotification = `{
  "remediation_id": "remediation-123",
  "notification_id": "notification-456",
  "recipient": "ops-team@example.com",
  "channel": "email",
  "message_summary": "Incident alert: High CPU usage on pod xyz",
  "status": "sent",
  "sent_at": "2025-11-03T12:00Z",
  "delivery_status": "200 OK",
  "error_message": "Slack API timeout after 30 seconds",
  "escalation_level": 0
}`

// patch returns base with the given top-level fields replaced (a nil value
// deletes the field; use jsonNull to set JSON null).
func patch(t *testing.T, base string, fields map[string]any) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(base), &m))
	for k, v := range fields {
		switch v {
		case nil:
			delete(m, k)
		case jsonNull:
			m[k] = nil
		default:
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

type nullMarker struct{}

var jsonNull = nullMarker{}

func TestRequestBodies(t *testing.T) {
	doc := loadDoc(t)
	const (
		events        = "/api/v1/audit/events"
		batch         = "/api/v1/audit/events/batch"
		notifications = "/api/v1/audit/notifications"
	)

	good := []struct {
		name, path string
		body       []byte
	}{
		{"seed event", events, []byte(seedEvent)},
		{"event with client id and parent", events, patch(t, seedEvent, map[string]any{
			"event_id": "0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b", "parent_event_id": "0193b6a2-4c1e-7d3f-8a5b-000000000001",
			"event_timestamp": "2025-12-13T02:00:00.123456+01:00", "unknown_field": "ignored"})},
		{"minimal event", events, patch(t, seedEvent, map[string]any{"actor_type": nil, "actor_id": nil,
			"resource_type": nil, "resource_id": nil, "parent_event_id": nil, "namespace": nil,
			"cluster_name": nil, "severity": nil, "duration_ms": nil})},
		{"leap second", events, patch(t, seedEvent, map[string]any{"event_timestamp": "2016-12-31T23:59:60.5Z"})},
		{"batch of one", batch, []byte("[" + seedEvent + "]")},
		{"seed notification", notifications, []byte(seedNotification)},
		{"notification at a leap second", notifications, patch(t, seedNotification, map[string]any{"sent_at": "2016-12-31T15:59:60-08:00"})},
		{"notification with nulls", notifications, patch(t, seedNotification, map[string]any{
			"delivery_status": jsonNull, "error_message": jsonNull, "escalation_level": 5})},
	}
	for _, g := range good {
		assert.NoError(t, ValidateRequestBody(doc, "POST", g.path, g.body), g.name)
	}

	bad := []struct {
		name, path, mention string
		body                []byte
	}{
		{"missing correlation_id", events, "correlation_id", patch(t, seedEvent, map[string]any{"correlation_id": nil})},
		{"missing event_data", events, "event_data", patch(t, seedEvent, map[string]any{"event_data": nil})},
		{"null event_data", events, "event_data", patch(t, seedEvent, map[string]any{"event_data": jsonNull})},
		{"array event_data", events, "event_data", patch(t, seedEvent, map[string]any{"event_data": []any{1}})},
		{"bad event_outcome", events, "event_outcome", patch(t, seedEvent, map[string]any{"event_outcome": "done"})},
		{"bad event_category", events, "event_category", patch(t, seedEvent, map[string]any{"event_category": "billing"})},
		{"empty version", events, "version", patch(t, seedEvent, map[string]any{"version": ""})},
		{"long version", events, "version", patch(t, seedEvent, map[string]any{"version": strings.Repeat("1", 21)})},
		{"timestamp without offset", events, "event_timestamp", patch(t, seedEvent, map[string]any{"event_timestamp": "2025-12-13T02:00:00"})},
		{"offset +24:00", events, "event_timestamp", patch(t, seedEvent, map[string]any{"event_timestamp": "2025-12-13T02:00:00+24:00"})},
		{"second 61", events, "event_timestamp", patch(t, seedEvent, map[string]any{"event_timestamp": "2016-12-31T23:59:61Z"})},
		{"sent_at offset +24:00", notifications, "sent_at", patch(t, seedNotification, map[string]any{"sent_at": "2025-11-03T12:00+24:00"})},
		{"date-only timestamp", events, "event_timestamp", patch(t, seedEvent, map[string]any{"event_timestamp": "2025-12-13"})},
		{"negative duration", events, "duration_ms", patch(t, seedEvent, map[string]any{"duration_ms": -1})},
		{"fractional duration", events, "duration_ms", patch(t, seedEvent, map[string]any{"duration_ms": 1.5})},
		{"parent_event_id not a uuid", events, "parent_event_id", patch(t, seedEvent, map[string]any{"parent_event_id": "parent_event_id_example"})},
		{"event_id not a uuid", events, "event_id", patch(t, seedEvent, map[string]any{"event_id": "42"})},
		{"actor_id null", events, "actor_id", patch(t, seedEvent, map[string]any{"actor_id": jsonNull})},
		{"object instead of batch", batch, "array", []byte(seedEvent)},
		{"empty batch", batch, "minimum number of items", []byte("[]")},
		{"bad batch element", batch, "event_outcome", []byte("[" + string(patch(t, seedEvent, map[string]any{"event_outcome": "x"})) + "]")},
		{"escalation_level 6", notifications, "escalation_level", patch(t, seedNotification, map[string]any{"escalation_level": 6})},
		{"escalation_level -1", notifications, "escalation_level", patch(t, seedNotification, map[string]any{"escalation_level": -1})},
		{"bad channel", notifications, "channel", patch(t, seedNotification, map[string]any{"channel": "sms"})},
		{"bad status", notifications, "status", patch(t, seedNotification, map[string]any{"status": "delivered"})},
		{"missing notification_id", notifications, "notification_id", patch(t, seedNotification, map[string]any{"notification_id": nil})},
		{"long recipient", notifications, "recipient", patch(t, seedNotification, map[string]any{"recipient": strings.Repeat("r", 501)})},
		{"not json", events, "not JSON", []byte("{")},
	}
	for _, b := range bad {
		err := ValidateRequestBody(doc, "POST", b.path, b.body)
		if assert.Error(t, err, b.name) {
			assert.Contains(t, err.Error(), b.mention, b.name)
		}
	}

	// More than the default maximum of 5000 elements.
	var sb strings.Builder
	sb.WriteString("[")
	for i := range 5001 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(seedEvent)
	}
	sb.WriteString("]")
	assert.Error(t, ValidateRequestBody(doc, "POST", batch, []byte(sb.String())))
}

func TestValidateResponse(t *testing.T) {
	doc := loadDoc(t)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	const events = "/api/v1/audit/events"
	created := []byte(`{"event_id":"0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b","event_timestamp":"2025-12-13T02:00:00Z","message":"ok"}`)
	problem503 := []byte(`{"type":"https://auditstream.dev/problems/kafka-unavailable","title":"Kafka unavailable","status":503,"detail":"x","instance":"/api/v1/audit/events"}`)

	assert.NoError(t, ValidateResponse(doc, "POST", events, 201,
		hdr("Content-Type", "application/json; charset=utf-8", "X-Request-ID", "abc"), created))
	assert.NoError(t, ValidateResponse(doc, "POST", events, 503,
		hdr("Content-Type", "application/problem+json", "X-Request-ID", "abc", "Retry-After", "5"), problem503))
	assert.NoError(t, ValidateResponse(doc, "GET", "/health/live", 200,
		hdr("Content-Type", "application/json", "X-Request-ID", "abc"), []byte(`{"status":"alive"}`)))
	problem401 := []byte(`{"type":"https://auditstream.dev/problems/unauthenticated","title":"Unauthenticated","status":401,"detail":"x","instance":"/api/v1/audit/events"}`)
	assert.NoError(t, ValidateResponse(doc, "GET", events, 401,
		hdr("Content-Type", "application/problem+json", "X-Request-ID", "abc", "WWW-Authenticate", `Bearer realm="auditstream"`), problem401))
	assert.Error(t, ValidateResponse(doc, "GET", events, 401,
		hdr("Content-Type", "application/problem+json", "X-Request-ID", "abc"), problem401), "a 401 without its challenge")
	problem429 := []byte(`{"type":"https://auditstream.dev/problems/rate-limited","title":"Too many requests","status":429,"detail":"x","instance":"/api/v1/audit/events"}`)
	assert.Error(t, ValidateResponse(doc, "POST", events, 429,
		hdr("Content-Type", "application/problem+json", "X-Request-ID", "abc"), problem429), "a 429 without Retry-After")
	assert.NoError(t, ValidateResponse(doc, "GET", "/openapi.yaml", 200,
		hdr("Content-Type", openapi.ContentType, "X-Request-ID", "abc"), openapi.YAML()))
	assert.NoError(t, ValidateResponse(doc, "POST", "/api/v1/audit/notifications", 201,
		hdr("Content-Type", "application/json", "X-Request-ID", "abc"), []byte(`{
		"id": 7265031429865472, "remediation_id": "r", "notification_id": "n", "recipient": "x",
		"channel": "slack", "message_summary": "m", "status": "failed", "sent_at": "2025-11-03T12:00:00Z",
		"delivery_status": null, "error_message": "boom", "escalation_level": 2,
		"created_at": "2025-11-03T12:00:01.123456Z", "updated_at": "2025-11-03T12:00:01.123456Z"}`)))

	// The read endpoints, with bodies shaped as the server writes them.
	jsonHdr := hdr("Content-Type", "application/json; charset=utf-8", "X-Request-ID", "abc")
	problemHdr := hdr("Content-Type", "application/problem+json", "X-Request-ID", "abc")
	dbDownHdr := hdr("Content-Type", "application/problem+json", "X-Request-ID", "abc", "Retry-After", "5")
	const byID = "/api/v1/audit/events/0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b"
	assert.NoError(t, ValidateResponse(doc, "GET", events+"?event_category=gateway&since=7d&limit=2", 200, jsonHdr, []byte(sampleQueryResponse)))
	assert.NoError(t, ValidateResponse(doc, "GET", events, 200, jsonHdr,
		[]byte(`{"data":[],"pagination":{"limit":50,"offset":0,"total":0,"has_more":false,"total_exact":true}}`)))
	assert.NoError(t, ValidateResponse(doc, "GET", events+"?limit=1000&offset=20000", 200, jsonHdr,
		queryResponse(t, map[string]any{"total": 10000, "total_exact": false, "offset": 20000, "limit": 1000})))
	assert.NoError(t, ValidateResponse(doc, "GET", byID, 200, jsonHdr, sampleEvent(t, 1, nil)))
	assert.NoError(t, ValidateResponse(doc, "GET", events+"?limit=0&cursor=x", 400, problemHdr, []byte(`{
		"type":"https://auditstream.dev/problems/invalid-query-parameter","title":"Invalid query parameter","status":400,
		"detail":"2 query parameter(s) are invalid; see field_errors.","instance":"/api/v1/audit/events","request_id":"abc",
		"field_errors":{"limit":"must be an integer from 1 to 1000","cursor":"is not a cursor this service issued (use pagination.next_cursor)"}}`)))
	assert.NoError(t, ValidateResponse(doc, "GET", "/api/v1/audit/events/nope", 400, problemHdr, []byte(`{
		"type":"https://auditstream.dev/problems/invalid-query-parameter","title":"Invalid query parameter","status":400,
		"detail":"event_id must be a UUID.","instance":"/api/v1/audit/events/nope","field_errors":{"event_id":"must be a UUID"}}`)))
	assert.NoError(t, ValidateResponse(doc, "GET", byID, 404, problemHdr, []byte(`{
		"type":"https://auditstream.dev/problems/not-found","title":"Not found","status":404,
		"detail":"No audit event with event_id 0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b is stored.","instance":"`+byID+`"}`)))
	dbDown := []byte(`{"type":"https://auditstream.dev/problems/database-unavailable","title":"Database unavailable","status":503,"detail":"x","instance":"/api/v1/audit/events"}`)
	for _, path := range []string{events, byID} {
		assert.NoError(t, ValidateResponse(doc, "GET", path, 503, dbDownHdr, dbDown), path)
	}

	failures := []struct {
		name    string
		method  string
		path    string
		status  int
		header  http.Header
		body    []byte
		mention string
	}{
		{"missing X-Request-ID", "POST", events, 201, hdr("Content-Type", "application/json"), created, "X-Request-ID"},
		{"missing Retry-After", "POST", events, 503, hdr("Content-Type", "application/problem+json", "X-Request-ID", "a"), problem503, "Retry-After"},
		{"non-integer Retry-After", "POST", events, 503, hdr("Content-Type", "application/problem+json", "X-Request-ID", "a", "Retry-After", "soon"), problem503, "Retry-After"},
		{"problem as application/json", "POST", events, 503, hdr("Content-Type", "application/json", "X-Request-ID", "a", "Retry-After", "1"), problem503, "application/json"},
		{"undocumented status", "POST", events, 418, hdr(), nil, "418"},
		{"undocumented path", "GET", "/api/v1/audit/notifications", 200, hdr(), nil, "not documented"},
		{"bad body", "POST", events, 201, hdr("Content-Type", "application/json", "X-Request-ID", "a"), []byte(`{"event_id":"nope","message":"ok"}`), "event_id"},
		{"missing created_at", "POST", "/api/v1/audit/notifications", 201, hdr("Content-Type", "application/json", "X-Request-ID", "a"),
			patch(t, seedNotification, map[string]any{"id": 1, "updated_at": "2025-11-03T12:00:01Z"}), "created_at"},
		{"query 503 without Retry-After", "GET", events, 503, problemHdr, dbDown, "Retry-After"},
		{"event 503 without Retry-After", "GET", byID, 503, problemHdr, dbDown, "Retry-After"},
		{"query 404", "GET", events, 404, problemHdr, dbDown, "404"},
		{"null data", "GET", events, 200, jsonHdr, []byte(`{"data":null,"pagination":{"limit":50,"offset":0,"total":0,"has_more":false,"total_exact":true}}`), "data"},
		{"missing total_exact", "GET", events, 200, jsonHdr, queryResponse(t, map[string]any{"total_exact": nil}), "total_exact"},
		{"string total", "GET", events, 200, jsonHdr, queryResponse(t, map[string]any{"total": "5"}), "total"},
		{"limit 0", "GET", events, 200, jsonHdr, queryResponse(t, map[string]any{"limit": 0}), "limit"},
		{"absent nullable member", "GET", byID, 200, jsonHdr, sampleEvent(t, 1, map[string]any{"actor_id": nil}), "actor_id"},
		{"bad event_date", "GET", byID, 200, jsonHdr, sampleEvent(t, 1, map[string]any{"event_date": "2025-12-13T00:00:00Z"}), "event_date"},
		{"bad event_timestamp", "GET", byID, 200, jsonHdr, sampleEvent(t, 1, map[string]any{"event_timestamp": "2025-12-13 02:00:00"}), "event_timestamp"},
		{"null event_data", "GET", byID, 200, jsonHdr, sampleEvent(t, 1, map[string]any{"event_data": jsonNull}), "event_data"},
		{"null correlation_id", "GET", byID, 200, jsonHdr, sampleEvent(t, 1, map[string]any{"correlation_id": jsonNull}), "correlation_id"},
		{"bad event_id", "GET", byID, 200, jsonHdr, sampleEvent(t, 1, map[string]any{"event_id": "42"}), "event_id"},
		{"bad event_outcome", "GET", byID, 200, jsonHdr, sampleEvent(t, 1, map[string]any{"event_outcome": "done"}), "event_outcome"},
		{"bad event in a page", "GET", events, 200, jsonHdr, []byte(strings.Replace(sampleQueryResponse, `"event_date": "2025-12-13"`, `"event_date": "13.12.2025"`, 1)), "event_date"},
		{"bad health status", "GET", "/health", 503, hdr("Content-Type", "application/json", "X-Request-ID", "a"), []byte(`{"status":"down"}`), "status"},
	}
	for _, f := range failures {
		err := ValidateResponse(doc, f.method, f.path, f.status, f.header, f.body)
		if assert.Error(t, err, f.name) {
			assert.Contains(t, err.Error(), f.mention, f.name)
		}
	}
}

// sampleQueryResponse is a page as the server writes it: one event with
// every optional field null, one with all of them set, and a cursor.
const sampleQueryResponse = `{
  "data": [
    {
      "event_id": "0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4c",
      "version": "1.0",
      "event_type": "notification.message.sent",
      "event_timestamp": "2025-12-13T02:00:01.123456Z",
      "event_date": "2025-12-13",
      "event_category": "notification",
      "event_action": "sent",
      "event_outcome": "failure",
      "actor_type": null,
      "actor_id": null,
      "resource_type": null,
      "resource_id": null,
      "correlation_id": "rr-2025-001",
      "parent_event_id": null,
      "namespace": null,
      "cluster_name": null,
      "severity": null,
      "duration_ms": null,
      "actor_ip": null,
      "cluster_id": null,
      "error_code": null,
      "error_message": null,
      "is_sensitive": false,
      "retention_days": null,
      "submitted_by": "kafka:unknown",
      "chain_seq": null,
      "previous_event_hash": null,
      "event_hash": null,
      "hash_key_id": null,
      "hash_version": null,
      "event_data": {}
    },
    {
      "event_id": "0193b6a2-4c1e-7d3f-8a5b-9c0d1e2f3a4b",
      "version": "1.0",
      "event_type": "gateway.signal.received",
      "event_timestamp": "2025-12-13T02:00:00Z",
      "event_date": "2025-12-13",
      "event_category": "gateway",
      "event_action": "received",
      "event_outcome": "success",
      "actor_type": "service",
      "actor_id": "gateway-service",
      "resource_type": "Signal",
      "resource_id": "fp-abc123",
      "correlation_id": "rr-2025-001",
      "parent_event_id": "0193b6a2-4c1e-7d3f-8a5b-000000000001",
      "namespace": "production",
      "cluster_name": "prod-eu-1",
      "severity": "critical",
      "duration_ms": 1,
      "actor_ip": "2001:db8::7",
      "cluster_id": "c-uid-1",
      "error_code": "E42",
      "error_message": "disk full",
      "is_sensitive": true,
      "retention_days": 365,
      "submitted_by": null,
      "chain_seq": 1,
      "previous_event_hash": "",
      "event_hash": "9a7c1e2d3b4f5a6978808192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
      "hash_key_id": "2025-06",
      "hash_version": 1,
      "event_data": {"signal_name": "HighCPUUsage", "labels": {"pod": "xyz"}, "values": [1, 2.5, null]}
    }
  ],
  "pagination": {
    "limit": 2,
    "offset": 0,
    "total": 7,
    "has_more": true,
    "total_exact": true,
    "next_cursor": "AQAGRcu8TUpAAZO2okwefT-KW5wNHi86Sw"
  }
}`

// sampleEvent returns event i of sampleQueryResponse patched with fields.
func sampleEvent(t *testing.T, i int, fields map[string]any) []byte {
	t.Helper()
	var page struct{ Data []json.RawMessage }
	require.NoError(t, json.Unmarshal([]byte(sampleQueryResponse), &page))
	return patch(t, string(page.Data[i]), fields)
}

// queryResponse returns sampleQueryResponse with its pagination patched.
func queryResponse(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	var page map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(sampleQueryResponse), &page))
	page["pagination"] = patch(t, string(page["pagination"]), fields)
	b, err := json.Marshal(page)
	require.NoError(t, err)
	return b
}
