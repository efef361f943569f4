package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Problem is an RFC 7807 answer of the server: why a request was refused.
// It is the error of a [Failure] the server caused; use errors.As.
type Problem struct {
	// Type is a stable URI per kind of problem (listed in the README),
	// e.g. https://auditstream.dev/problems/validation-error.
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Instance is the request path.
	Instance string `json:"instance"`
	// FieldErrors maps each rejected field to its message. In the
	// problem of one event of a batch the "[i]." prefix is removed, so
	// it reads as for a single event.
	FieldErrors map[string]string `json:"field_errors,omitempty"`
	// RequestID ties the answer to the server's access log.
	RequestID string `json:"request_id,omitempty"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auditstream: %d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	if p.RequestID != "" {
		b.WriteString(" (request " + p.RequestID + ")")
	}
	return b.String()
}

// maxProblemBytes bounds how much of an error answer is read: problems are
// small, and a proxy's HTML error page need not be read whole.
const maxProblemBytes = 64 << 10

// readProblem turns an error answer into a Problem. An answer that is not
// a problem document (a proxy's page, an empty body) keeps its status and
// gets the status text as title and the start of the body as detail.
func readProblem(res *http.Response) *Problem {
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxProblemBytes))
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Status == 0 {
		p = Problem{Detail: strings.ToValidUTF8(strings.TrimSpace(string(body[:min(len(body), 512)])), "")}
	}
	// The status line is what happened; a body's status could be stale.
	p.Status = res.StatusCode
	if p.Title == "" {
		p.Title = http.StatusText(res.StatusCode)
	}
	if p.RequestID == "" {
		p.RequestID = res.Header.Get("X-Request-ID")
	}
	return &p
}
