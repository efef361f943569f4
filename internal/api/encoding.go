package api

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// acceptedEncodings is the Accept-Encoding a 415 for an unsupported
// Content-Encoding carries (RFC 7694 section 3), so a client can tell
// which codings to use instead.
const acceptedEncodings = "gzip, identity"

// gzipped reads the request's Content-Encoding: true for gzip, false for
// none or identity. Any other coding, or gzip applied twice, is answered
// 415 (ok false). Codings are case-insensitive and may be listed over
// several header lines; x-gzip is gzip's old name (RFC 9110 8.4.1.3).
func gzipped(c *gin.Context) (gz, ok bool) {
	var codings []string
	for _, line := range c.Request.Header.Values("Content-Encoding") {
		for coding := range strings.SplitSeq(line, ",") {
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "" && coding != "identity" {
				codings = append(codings, coding)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return false, true
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		return true, true
	}
	c.Header("Accept-Encoding", acceptedEncodings)
	abortProblem(c, probMediaType, fmt.Sprintf("Content-Encoding %q is not supported; send the body as it is, or compressed once with gzip.",
		strings.Join(c.Request.Header.Values("Content-Encoding"), ", ")))
	return false, false
}

// gunzip decodes body, a reader already bounded to limit bytes as sent,
// and bounds what it decodes to limit too: the body limits are limits on
// the JSON, so a few kilobytes that expand to gigabytes are a 413 after
// reading limit bytes of them, not an allocation of gigabytes.
func gunzip(w http.ResponseWriter, body io.Reader, limit int64) (io.Reader, error) {
	zr, err := gzip.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("not valid gzip: %w", err)
	}
	return http.MaxBytesReader(w, gzipReadCloser{zr}, limit), nil
}

// gzipReadCloser names gzip errors as such in the 400 the client gets.
type gzipReadCloser struct{ zr *gzip.Reader }

func (g gzipReadCloser) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("not valid gzip: %w", err)
	}
	return n, err
}

func (g gzipReadCloser) Close() error { return g.zr.Close() }
