package api

import (
	"context"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/kafka"
)

// principalSigner puts the caller's name on a record so that the writer
// can tell the API's records from a direct producer's (internal/provenance).
type principalSigner interface {
	AppendHeaders(hs []kafka.Header, principal, id string, value []byte) []kafka.Header
}

// principalName names the caller the authorize middleware authenticated
// (auth.Anonymous with AUTH_DISABLED). Every route that asks passes the
// middleware, so the fallback only names a request that did not.
func principalName(ctx context.Context) string {
	if p, ok := auth.PrincipalFrom(ctx); ok {
		return p.Name
	}
	return auth.AnonymousName
}

// recordHeaders are the headers of one record: the API's own, then the
// principal's name and signature, which bind it to this id and value.
func (w *writeHandlers) recordHeaders(principal, id string, value []byte) []kafka.Header {
	hs := make([]kafka.Header, len(w.headers), len(w.headers)+2)
	copy(hs, w.headers)
	return w.signer.AppendHeaders(hs, principal, id, value)
}
