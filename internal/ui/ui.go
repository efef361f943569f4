// Package ui is auditstream's web console (SPEC 13), served by ingest-api
// at /ui/: sign-in with an API token, event search with a per-minute chart,
// the correlation timeline with its chain verification, event detail and
// legal holds.
//
// The console is static files embedded in the binary and a client of the
// public API only: every call goes to the same /api/v1 routes with the
// signed-in user's bearer token, so the API's scopes and namespace
// restrictions are the console's too, and the console grants nothing of
// its own. The token lives in the tab's sessionStorage and travels only in
// the Authorization header, never in a cookie or a URL.
//
// No framework and no build step: hand-written ES modules, one stylesheet
// and an HTML shell, about 1,300 lines in all. Every browser the
// console targets runs ES modules natively; the views are a handful of
// forms and tables whose DOM a 20-line helper (dom.js) builds, and the
// chart is a few dozen SVG rectangles. A bundler or a library would add a
// toolchain to install and keep current, and assets built from it to
// review, to save less code than it brings, and CI would need npm. What is
// committed is what is served.
//
// Every answer carries Content-Security-Policy default-src 'self': no
// inline script or style, nothing from another origin, no framing. The
// views build the DOM with textContent, never innerHTML, so stored event
// fields cannot inject markup.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// securityHeaders go on every answer of the console. The policy allows
// the console's own files and fetches to its own origin, nothing else:
// frame-ancestors (which default-src does not cover) keeps it out of other
// sites' frames, form-action and base-uri keep a form or a base element
// from pointing elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy":    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
	"X-Content-Type-Options":     "nosniff",
	"Referrer-Policy":            "no-referrer",
	"Cross-Origin-Opener-Policy": "same-origin",
}

// file is one embedded asset, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the console: index.html at Prefix, the other assets by
// name under it. Assets are revalidated on every load (Cache-Control:
// no-cache with a content ETag), so a new binary's console is in use at
// once and an unchanged one costs a 304.
type Handler struct {
	files map[string]file
}

// NewHandler returns the console's handler.
func NewHandler() (*Handler, error) {
	h := &Handler{files: map[string]file{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			return fmt.Errorf("ui: no content type for %s", p)
		}
		sum := sha256.Sum256(body)
		h.files[strings.TrimPrefix(p, "assets/")] = file{body: body, contentType: ct,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui: read assets: %w", err)
	}
	if _, ok := h.files["index.html"]; !ok {
		return nil, fmt.Errorf("ui: no index.html among the assets")
	}
	return h, nil
}

// ServeHTTP answers GET and HEAD for the console's files; the views are
// routed in the page (the URL's fragment), so any other path is a 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	f, ok := h.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304 and HEAD without a body.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
