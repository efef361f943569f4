package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api/openapi/openapitest"
)

func serve(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestHandler: the console's files with their types and the security
// headers on every answer, revalidated by ETag; nothing else.
func TestHandler(t *testing.T) {
	h, err := NewHandler()
	require.NoError(t, err)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html; charset=utf-8", `<script type="module" src="app.js"></script>`},
		{"/ui/index.html", "text/html; charset=utf-8", "Skip to content"},
		{"/ui/app.js", "javascript", "import"},
		{"/ui/style.css", "text/css; charset=utf-8", ":focus-visible"},
		{"/ui/filters.json", "application/json", `"correlation_id"`},
		{"/ui/favicon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := serve(t, h, http.MethodGet, tc.path)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Contains(t, rec.Header().Get("Content-Type"), tc.contentType)
			require.Contains(t, rec.Body.String(), tc.contains)
			require.Equal(t, "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'", rec.Header().Get("Content-Security-Policy"))
			require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
			require.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"))
			require.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
			etag := rec.Header().Get("ETag")
			require.NotEmpty(t, etag)
			again := serve(t, h, http.MethodGet, tc.path, "If-None-Match", etag)
			require.Equal(t, http.StatusNotModified, again.Code)
			require.Empty(t, again.Body.String())
			head := serve(t, h, http.MethodHead, tc.path)
			require.Equal(t, http.StatusOK, head.Code)
			require.Empty(t, head.Body.String())
		})
	}
	for _, path := range []string{"/ui/nope.js", "/ui/assets/app.js", "/ui/../ui.go", "/other/", "/ui/search"} {
		rec := serve(t, h, http.MethodGet, path)
		require.Equal(t, http.StatusNotFound, rec.Code, path)
		require.NotEmpty(t, rec.Header().Get("Content-Security-Policy"), path)
	}
	rec := serve(t, h, http.MethodPost, "/ui/")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}

// TestAssetsAreCSPSafe: no inline script, style or event handler, and no
// URL of another origin, in any asset, so default-src 'self' blocks
// nothing the console needs.
func TestAssetsAreCSPSafe(t *testing.T) {
	h, err := NewHandler()
	require.NoError(t, err)
	for name, f := range h.files {
		// The SVG namespace is a name, not a URL anything fetches.
		body := strings.ReplaceAll(string(f.body), "http://www.w3.org/2000/svg", "")
		for _, bad := range []string{"<style", " style=", "javascript:", ".innerHTML", ".outerHTML", "insertAdjacentHTML(", "document.write(",
			"eval(", "new Function", "http://", "https://", "setAttribute('style'"} {
			require.NotContains(t, body, bad, name)
		}
		if strings.HasSuffix(name, ".html") {
			require.NotRegexp(t, `<script(?: [^>]*)?>[^<]+</script>`, body, "%s: an inline script", name)
			require.NotRegexp(t, `\son[a-z]+=`, body, "%s: an inline event handler", name)
		}
	}
}

// TestFiltersMatchTheQuery: the search form offers exactly the filters of
// GET /api/v1/audit/events as the OpenAPI document lists them, with an
// enumerated filter's values as a choice.
func TestFiltersMatchTheQuery(t *testing.T) {
	h, err := NewHandler()
	require.NoError(t, err)
	var ui struct {
		Filters []struct {
			Name   string   `json:"name"`
			Label  string   `json:"label"`
			Values []string `json:"values"`
		} `json:"filters"`
	}
	require.NoError(t, json.Unmarshal(h.files["filters.json"].body, &ui))

	doc, err := openapitest.Load(context.Background())
	require.NoError(t, err)
	op, err := openapitest.Operation(doc, http.MethodGet, "/api/v1/audit/events")
	require.NoError(t, err)
	// Paging and the time range have controls of their own.
	notFilters := []string{"since", "until", "limit", "offset", "cursor"}
	want := map[string][]string{}
	for _, p := range op.Parameters {
		if p.Value.In != "query" || slices.Contains(notFilters, p.Value.Name) {
			continue
		}
		var values []string
		for _, v := range p.Value.Schema.Value.Enum {
			values = append(values, v.(string))
		}
		want[p.Value.Name] = values
	}
	got := map[string][]string{}
	for _, f := range ui.Filters {
		require.NotEmpty(t, f.Label, f.Name)
		got[f.Name] = f.Values
	}
	require.Equal(t, want, got)
}
