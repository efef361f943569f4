package api

import (
	"context"

	"github.com/auditstream/auditstream/internal/kafka"
)

// anonymous is the principal of a request nobody authenticated: every
// request until an authenticator names its caller (AUTH_DISABLED).
const anonymous = "anonymous"

// principalSigner puts the caller's name on a record so that the writer
// can tell the API's records from a direct producer's (internal/provenance).
type principalSigner interface {
	AppendHeaders(hs []kafka.Header, principal, id string, value []byte) []kafka.Header
}

// principalOf names the authenticated caller of a request, or anonymous.
func (w *writeHandlers) principalOf(ctx context.Context) string {
	if w.principal == nil {
		return anonymous
	}
	if p := w.principal(ctx); p != "" {
		return p
	}
	return anonymous
}

// recordHeaders are the headers of one record: the API's own, then the
// principal's name and signature, which bind it to this id and value.
func (w *writeHandlers) recordHeaders(principal, id string, value []byte) []kafka.Header {
	hs := make([]kafka.Header, len(w.headers), len(w.headers)+2)
	copy(hs, w.headers)
	return w.signer.AppendHeaders(hs, principal, id, value)
}
