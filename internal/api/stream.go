package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/query"
)

// DefaultMaxPageBytes caps the events of one query page (QUERY_MAX_PAGE_BYTES):
// 8 MiB is over a hundred events at the 64 KiB event_data limit, thousands
// of typical ones, and reaches a client in seconds.
const DefaultMaxPageBytes = 8 << 20

// flushBytes is how much of a page is gathered before it is written and
// flushed: large enough that small events do not cost a write each, small
// enough that a response in progress holds little memory.
const flushBytes = 32 << 10

// pageWriter streams a query page as {"data": [...], "pagination": {...}}:
// each event is encoded as PostgreSQL hands it over and written out, so a
// slow or stalled reader holds one buffer, not the page. pagination
// follows data, so the page is counted before the first event is read and
// the summary is written last.
type pageWriter struct {
	c            *gin.Context
	maxBytes     int
	writeTimeout time.Duration
	buf          []byte
	events       int
	eventBytes   int
	started      bool
}

// event is the query's emit: it takes ev unless the page's events would
// pass maxBytes (the first one is always taken).
func (w *pageWriter) event(ev *query.Event) (bool, error) {
	if !w.started {
		w.start()
	}
	mark := len(w.buf)
	if w.events > 0 {
		w.buf = append(w.buf, ',')
	}
	w.buf = (*audit.Event)(ev).AppendStoredJSON(w.buf)
	size := len(w.buf) - mark
	if w.events > 0 && w.eventBytes+size > w.maxBytes {
		w.buf = w.buf[:mark]
		return false, nil
	}
	w.events++
	w.eventBytes += size
	if len(w.buf) < flushBytes {
		return true, nil
	}
	return true, w.flush()
}

// start sends the 200 and opens data. The write deadline is set from here,
// so time the database took does not shorten the client's.
func (w *pageWriter) start() {
	w.started = true
	// The server's write timeout is a default for every route; a page
	// gets its own from the moment it starts, and the error is ignored
	// where the connection cannot take one (it then keeps the server's).
	_ = http.NewResponseController(w.c.Writer).SetWriteDeadline(time.Now().Add(w.writeTimeout))
	w.c.Header("Content-Type", "application/json; charset=utf-8")
	w.c.Status(http.StatusOK)
	w.buf = append(w.buf, `{"data":[`...)
}

func (w *pageWriter) flush() error {
	if _, err := w.c.Writer.Write(w.buf); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	w.c.Writer.Flush()
	return nil
}

// finish closes data and writes pagination.
func (w *pageWriter) finish(p Pagination) error {
	if !w.started {
		w.start()
	}
	tail, err := json.Marshal(p)
	if err != nil {
		return err
	}
	w.buf = append(w.buf, `],"pagination":`...)
	w.buf = append(append(w.buf, tail...), '}', '\n')
	return w.flush()
}

// abort ends a response that has started and cannot be completed (the
// client stopped reading, or the database failed mid-page): cutOff cuts
// the connection once the request is logged, so the client sees a broken
// response rather than a complete page that lacks events.
func (w *pageWriter) abort(err error) {
	_ = w.c.Error(err)
	w.c.Set(cutKey, true)
}

// cutKey marks a request whose response must not be completed.
const cutKey = "cut_response"

// cutOff, outside every handler but tracing and requestID, cuts the connection of a
// request marked with cutKey, after the handlers (and the access log) are
// done: http.ErrAbortHandler makes net/http drop the connection without
// completing the response (over HTTP/1.1 without the last chunk, over
// HTTP/2 with a stream reset).
func cutOff() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if c.GetBool(cutKey) {
			panic(http.ErrAbortHandler)
		}
	}
}
