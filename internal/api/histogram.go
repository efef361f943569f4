package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/auditstream/auditstream/internal/query"
)

// HistogramResponse is the answer to GET /api/v1/audit/events/histogram:
// the matching events per minute over the resolved bounds.
type HistogramResponse struct {
	Since         time.Time      `json:"since"`
	Until         time.Time      `json:"until"`
	BucketSeconds int            `json:"bucket_seconds"`
	Total         int64          `json:"total"`
	Buckets       []query.Bucket `json:"buckets"`
}

// histogram counts the events of a query's filters per minute (the
// console's chart). Unlike a query, it needs a range, and a bounded one:
// a count has no page to stop at, so an open range would count a whole
// table. since is required, until defaults to now, and the two are at
// most query.MaxHistogramRange apart; the answer is never clamped.
func (h *readHandlers) histogram(c *gin.Context) {
	now := h.now()
	bad := map[string]string{}
	f := parseFilter(c, now, bad)
	_, given := c.GetQuery("since")
	_, badSince := bad["since"]
	_, badUntil := bad["until"]
	if f.Until.IsZero() {
		f.Until = now.UTC()
	}
	switch {
	case !given:
		bad["since"] = fmt.Sprintf("is required: the histogram covers at most %s up to until", query.MaxHistogramRange)
	case badSince || badUntil:
		// The range is unknown; the bound itself is reported.
	case f.Since.After(f.Until):
		bad["since"] = "must not be after until"
	case f.Until.Sub(f.Since) > query.MaxHistogramRange:
		bad["since"] = fmt.Sprintf("must be at most %s before until (1-minute buckets); narrow the range", query.MaxHistogramRange)
	}
	if len(bad) > 0 {
		abortProblem(c, probQueryParam, fmt.Sprintf("%d query parameter(s) are invalid; see field_errors.", len(bad)), withFieldErrors(bad))
		return
	}
	if !h.access.restrictReads(c, &f) {
		return
	}
	buckets, err := h.events.Histogram(c.Request.Context(), f)
	if err != nil {
		readFailed(c, err)
		return
	}
	res := HistogramResponse{Since: f.Since.UTC(), Until: f.Until.UTC(), BucketSeconds: int(query.BucketWidth.Seconds()), Buckets: buckets}
	for _, b := range buckets {
		res.Total += b.Count
	}
	c.JSON(http.StatusOK, res)
}
