package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/verify"
)

// chainVerifier verifies one stored chain (verify.Verifier).
type chainVerifier interface {
	Chain(ctx context.Context, correlationID string, opts verify.Options) (verify.Result, error)
}

// DefaultVerifyTimeout bounds one verify-chain (VERIFY_CHAIN_TIMEOUT): a
// chain verifies at some 40,000 events a second on two shared cores (make
// bench: 2.4 s for 100,000), so ten minutes verify chains of over 20
// million events, while a request cannot hold a database snapshot for
// longer. Longer chains are for auditctl verify.
const DefaultVerifyTimeout = 10 * time.Minute

// maxVerifyBody bounds the request body: a correlation_id is at most 255
// characters.
const maxVerifyBody = 4 << 10

// VerifyChainRequest is the body of POST /api/v1/audit/verify-chain.
type VerifyChainRequest struct {
	CorrelationID string `json:"correlation_id"`
}

// VerifyChainResponse is SPEC 9.3's answer, seed-compatible: 200 also for
// a broken chain, with is_valid false.
type VerifyChainResponse struct {
	CorrelationID  string          `json:"correlation_id"`
	IsValid        bool            `json:"is_valid"`
	TotalEvents    int64           `json:"total_events"`
	VerifiedEvents int64           `json:"verified_events"`
	TamperedEvents []TamperedEvent `json:"tampered_events"`
	// MoreTamperedEvents counts the breaks after those listed (ours).
	MoreTamperedEvents   int64          `json:"more_tampered_events"`
	FirstSeq             int64          `json:"first_seq"`
	LastSeq              int64          `json:"last_seq"`
	TruncatedByRetention bool           `json:"truncated_by_retention"`
	Checkpoint           *CheckpointRef `json:"checkpoint"`
	VerificationTime     time.Time      `json:"verification_time"`
	Message              string         `json:"message"`
}

// TamperedEvent is where a chain breaks. The hashes are lowercase hex;
// null where they do not apply (a gap has no expected hash, a cut no
// event).
type TamperedEvent struct {
	EventID      *uuid.UUID `json:"event_id"`
	ChainSeq     int64      `json:"chain_seq"`
	ExpectedHash *string    `json:"expected_hash"`
	ActualHash   *string    `json:"actual_hash"`
	Message      string     `json:"message"`
	// Kind names the break (ours): altered, link, gap, order, unchained,
	// unverifiable, checkpoint, cut.
	Kind integrity.BreakKind `json:"kind"`
}

// CheckpointRef is the signed checkpoint the chain was held to: its id,
// its time, and the chain_seq it covered (every event up to it is
// anchored outside the database).
type CheckpointRef struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Covered int64     `json:"covered"`
}

// verifyResults are the result label values of auditstream_verify_runs_total.
var verifyResults = []string{"valid", "broken", "not_found", "error", "timeout"}

// integrityHandlers serve verify-chain, the export and the checkpoints'
// public key.
type integrityHandlers struct {
	cfg    Config
	deps   Integrity
	access *access
	now    func() time.Time
	tracer trace.Tracer // nil when tracing is off

	verifyRuns     *prometheus.CounterVec
	verifyDuration prometheus.Histogram
	exports        *prometheus.CounterVec
	exportEvents   prometheus.Counter
	exportBytes    prometheus.Counter
	// exportSlots holds one token per export in progress.
	exportSlots chan struct{}
}

func newIntegrityHandlers(cfg Config, deps Deps, a *access) *integrityHandlers {
	f := promauto.With(deps.Registerer)
	h := &integrityHandlers{cfg: cfg, deps: deps.Integrity, access: a, now: deps.Now, exportSlots: make(chan struct{}, cfg.MaxConcurrentExports),
		verifyRuns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_verify_runs_total",
			Help: "verify-chain requests by result: valid, broken (tampering found), not_found, error (the database failed), timeout (past VERIFY_CHAIN_TIMEOUT).",
		}, []string{"result"}),
		verifyDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditstream_verify_duration_seconds",
			Help:    "Time to verify one chain in verify-chain, reading it included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 9), // 5 ms to 5.5 min
		}),
		exports: f.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_exports_total",
			Help: "Exports by outcome: complete, incomplete (ended early with a signed incomplete trailer), aborted (the client stopped reading or left), failed (answered with an error), busy (refused: EXPORT_MAX_CONCURRENT in progress).",
		}, []string{"result"}),
		exportEvents: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_export_events_total",
			Help: "Events written into exports.",
		}),
		exportBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_export_bytes_total",
			Help: "Bytes of exports sent to clients.",
		}),
	}
	for _, r := range verifyResults {
		h.verifyRuns.WithLabelValues(r)
	}
	for _, r := range exportResults {
		h.exports.WithLabelValues(r)
	}
	if deps.Tracing.Enabled() {
		h.tracer = deps.Tracing.Tracer("github.com/auditstream/auditstream/internal/api")
	}
	return h
}

// unconfigured answers 503 for a route whose keys ingest-api was not
// given.
func unconfigured(c *gin.Context, what string) {
	abortProblem(c, probIntegrity, "This ingest-api is not configured for "+what+".")
}

func (h *integrityHandlers) publicKey(c *gin.Context) {
	if h.deps.CheckpointKeys == nil {
		unconfigured(c, "checkpoints: set CHECKPOINT_PUBLIC_KEY_FILE to the public key of the writers' CHECKPOINT_SIGNING_KEY_FILE")
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/x-pem-file", h.deps.CheckpointKeys.PEM())
}

// longRequest gives a request that may take up to d the deadlines of its
// own: the server's read deadline (which would cancel the request's
// context once passed) is lifted, and its write deadline moved past d.
// The error is ignored where a connection cannot take deadlines; it then
// keeps the server's.
func longRequest(c *gin.Context, d time.Duration) *http.ResponseController {
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(d))
	return rc
}

func (h *integrityHandlers) verifyChain(c *gin.Context) {
	if h.deps.Verifier == nil {
		unconfigured(c, "verify-chain: set INTEGRITY_KEYS_FILE (the chain's HMAC keys) and CHECKPOINT_PUBLIC_KEY_FILE")
		return
	}
	body, ok := readJSONBody(c, maxVerifyBody)
	if !ok {
		return
	}
	var req VerifyChainRequest
	if err := json.Unmarshal(body, &req); err != nil {
		abortProblem(c, probMalformed, "The body must be a JSON object {\"correlation_id\": \"...\"}: "+err.Error())
		return
	}
	if msg := correlationIDError(req.CorrelationID); msg != "" {
		abortProblem(c, probValidation, "1 field(s) failed validation; see field_errors.", withFieldErrors(map[string]string{"correlation_id": msg}))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.VerifyTimeout)
	defer cancel()
	longRequest(c, h.cfg.VerifyTimeout+h.cfg.WriteTimeout)
	var span trace.Span
	if h.tracer != nil {
		ctx, span = h.tracer.Start(ctx, "verify-chain", trace.WithAttributes(attribute.String("auditstream.correlation_id", req.CorrelationID)))
		defer span.End()
	}

	start := time.Now()
	res, err := h.deps.Verifier.Chain(ctx, req.CorrelationID, verify.Options{Visible: h.visible(c)})
	h.verifyDuration.Observe(time.Since(start).Seconds())
	if span != nil {
		span.SetAttributes(attribute.Int64("auditstream.events", res.Events), attribute.Bool("auditstream.valid", err == nil && res.Valid()))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.verifyRuns.WithLabelValues("timeout").Inc()
		_ = c.Error(err)
		abortProblem(c, probDatabase, fmt.Sprintf("The chain was not verified within VERIFY_CHAIN_TIMEOUT (%s); verify it with auditctl verify, which has no such limit.", h.cfg.VerifyTimeout))
		return
	case err != nil:
		h.verifyRuns.WithLabelValues("error").Inc()
		readFailed(c, err)
		return
	case !res.Found || res.Hidden:
		// A chain outside the principal's namespaces is answered as one
		// that does not exist: its existence is not the caller's to know.
		h.verifyRuns.WithLabelValues("not_found").Inc()
		abortProblem(c, probNotFound, fmt.Sprintf("No chain with correlation_id %q is stored (that this credential may see).", req.CorrelationID))
		return
	case res.Valid():
		h.verifyRuns.WithLabelValues("valid").Inc()
	default:
		h.verifyRuns.WithLabelValues("broken").Inc()
	}
	c.JSON(http.StatusOK, verifyResponse(res))
}

// visible limits verification to the principal's namespaces: a chain with
// an event outside them, or without a namespace, is not the principal's
// to verify, since its result would tell about events it may not read.
func (h *integrityHandlers) visible(c *gin.Context) func(*string) bool {
	p, _ := auth.PrincipalFrom(c.Request.Context())
	if !p.Restricted() {
		return nil
	}
	return func(ns *string) bool { return ns != nil && p.MayUseNamespace(*ns) }
}

// correlationIDError checks a correlation_id as the write side does.
func correlationIDError(id string) string {
	switch {
	case id == "":
		return "required"
	case !utf8.ValidString(id):
		return "must be valid UTF-8"
	case strings.IndexByte(id, 0) >= 0:
		return "must not contain NUL characters"
	case utf8.RuneCountInString(id) > 255:
		return "must be at most 255 characters"
	}
	return ""
}

func verifyResponse(res verify.Result) VerifyChainResponse {
	out := VerifyChainResponse{
		CorrelationID: res.CorrelationID, IsValid: res.Valid(), TotalEvents: res.Events, VerifiedEvents: res.Verified,
		TamperedEvents: make([]TamperedEvent, len(res.Breaks)), MoreTamperedEvents: res.MoreBreaks,
		FirstSeq: res.FirstSeq, LastSeq: res.LastSeq, TruncatedByRetention: res.Dropped > 0, VerificationTime: res.At,
	}
	hexOf := func(b []byte) *string {
		if b == nil {
			return nil
		}
		s := hex.EncodeToString(b)
		return &s
	}
	for i, b := range res.Breaks {
		t := TamperedEvent{ChainSeq: b.ChainSeq, ExpectedHash: hexOf(b.Expected), ActualHash: hexOf(b.Actual), Message: b.Message, Kind: b.Kind}
		if b.EventID != uuid.Nil {
			id := b.EventID
			t.EventID = &id
		}
		out.TamperedEvents[i] = t
	}
	if a := res.Anchor; a != nil {
		out.Checkpoint = &CheckpointRef{ID: a.CheckpointID, Time: a.Time, Covered: a.Seq}
	}
	out.Message = verifyMessage(res)
	return out
}

// verifyMessage says in a sentence what the result means.
func verifyMessage(res verify.Result) string {
	var b strings.Builder
	if res.Valid() {
		fmt.Fprintf(&b, "The chain verifies: %d event(s)", res.Events)
		if res.Events > 0 {
			fmt.Fprintf(&b, ", chain_seq %d to %d", res.FirstSeq, res.LastSeq)
		}
		if a := res.Anchor; a != nil {
			fmt.Fprintf(&b, ", held to signed checkpoint %d up to chain_seq %d", a.CheckpointID, a.Seq)
		} else {
			b.WriteString(", not yet covered by a signed checkpoint")
		}
		b.WriteString(".")
	} else {
		first := res.Breaks[0]
		fmt.Fprintf(&b, "The chain is broken at chain_seq %d (%s): %s.", first.ChainSeq, first.Kind, first.Message)
		if more := int64(len(res.Breaks)-1) + res.MoreBreaks; more > 0 {
			fmt.Fprintf(&b, " %d more break(s) after it.", more)
		}
	}
	if res.Dropped > 0 {
		fmt.Fprintf(&b, " Retention removed %d event(s) of it (truncated_by_retention); the rest is verified from the first event left.", res.Dropped)
	}
	return b.String()
}
