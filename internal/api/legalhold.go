package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/selfaudit"
	"github.com/auditstream/auditstream/internal/store"
)

// holdStore keeps the legal holds (SPEC 10). record runs inside the
// operation's transaction: when it fails, nothing is placed or released.
type holdStore interface {
	PlaceHold(ctx context.Context, correlationID, reason, placedBy string, record func(store.Hold) error) (store.Hold, error)
	ReleaseHold(ctx context.Context, correlationID, reason, releasedBy string, record func(store.Release) error) (store.Release, error)
	Holds(ctx context.Context) ([]store.Hold, error)
}

// systemRecorder publishes auditstream's own audit events.
type systemRecorder interface {
	Record(ctx context.Context, actions ...selfaudit.Action) error
}

// LegalHoldResponse is a hold, as the seed system answers a placement and
// lists holds.
type LegalHoldResponse struct {
	CorrelationID  string    `json:"correlation_id"`
	EventsAffected int64     `json:"events_affected"`
	PlacedBy       string    `json:"placed_by"`
	PlacedAt       time.Time `json:"placed_at"`
	Reason         string    `json:"reason"`
}

// LegalHoldsResponse is the answer to GET /api/v1/audit/legal-hold.
type LegalHoldsResponse struct {
	Holds []LegalHoldResponse `json:"holds"`
	Total int                 `json:"total"`
}

// LegalHoldReleaseResponse is the answer to a release.
type LegalHoldReleaseResponse struct {
	CorrelationID  string    `json:"correlation_id"`
	EventsReleased int64     `json:"events_released"`
	ReleasedBy     string    `json:"released_by"`
	ReleasedAt     time.Time `json:"released_at"`
}

type holdHandlers struct {
	holds   holdStore
	system  systemRecorder
	access  *access
	log     *zap.Logger
	maxBody int64
}

// holdsUnscoped is why a principal limited to namespaces may not use the
// legal hold routes.
const holdsUnscoped = "A legal hold covers a correlation_id in every namespace, so a credential limited to namespaces may not place, release or list holds."

func holdResponse(h store.Hold) LegalHoldResponse {
	return LegalHoldResponse{CorrelationID: h.CorrelationID, EventsAffected: h.EventsAffected, PlacedBy: h.PlacedBy,
		PlacedAt: h.PlacedAt, Reason: h.Reason}
}

// holdBody reads a hold operation's body and parses it; on failure it
// has answered. A principal limited to namespaces is refused here too,
// after the body's checks, as for the write routes.
func holdBody[T any](c *gin.Context, h *holdHandlers, parse func([]byte) (T, error)) (T, bool) {
	var req T
	body, ok := readJSONBody(c, h.maxBody)
	if !ok {
		return req, false
	}
	req, err := parse(body)
	if err != nil {
		answerInvalid(c, err)
		return req, false
	}
	return req, h.access.mayUseUnscoped(c, holdsUnscoped)
}

// record publishes the audit event of a hold operation on correlationID by
// principal by, at the time the store gave it.
func (h *holdHandlers) record(ctx context.Context, typ, action, by, correlationID string, at time.Time, data map[string]any) error {
	data["correlation_id"] = correlationID
	return h.system.Record(ctx, selfaudit.Action{
		At: at, Type: typ, Action: action, Chain: selfaudit.LegalHoldChain,
		Actor: by, ResourceType: "correlation_id", ResourceID: correlationID, Data: data,
	})
}

func (h *holdHandlers) place(c *gin.Context) {
	req, ok := holdBody(c, h, audit.ParseLegalHold)
	if !ok {
		return
	}
	by := principalName(c.Request.Context())
	ctx := c.Request.Context()
	hold, err := h.holds.PlaceHold(ctx, req.CorrelationID, req.Reason, by, func(hold store.Hold) error {
		return h.record(ctx, selfaudit.TypeHoldPlaced, "place", by, hold.CorrelationID, hold.PlacedAt,
			map[string]any{"reason": hold.Reason, "placed_by": by, "events_affected": hold.EventsAffected})
	})
	switch {
	case errors.Is(err, store.ErrNothingToHold):
		abortProblem(c, probNotFound, fmt.Sprintf("No audit event with correlation_id %q is stored, and no legal hold is in force on it.", req.CorrelationID))
		return
	case errors.Is(err, store.ErrHeld):
		abortProblem(c, probHeld, fmt.Sprintf("A legal hold on correlation_id %q is already in force; release it first to place another.", req.CorrelationID))
		return
	case err != nil:
		h.failed(c, "placed", err)
		return
	}
	h.log.Info("legal hold placed", zap.String("correlation_id", hold.CorrelationID), zap.String("principal", by),
		zap.Int64("events_affected", hold.EventsAffected), zap.String("request_id", c.GetString(requestIDKey)))
	c.JSON(http.StatusOK, holdResponse(hold))
}

func (h *holdHandlers) list(c *gin.Context) {
	if !h.access.mayUseUnscoped(c, holdsUnscoped) {
		return
	}
	holds, err := h.holds.Holds(c.Request.Context())
	if err != nil {
		readFailed(c, err)
		return
	}
	out := LegalHoldsResponse{Holds: make([]LegalHoldResponse, len(holds)), Total: len(holds)}
	for i, hold := range holds {
		out.Holds[i] = holdResponse(hold)
	}
	c.JSON(http.StatusOK, out)
}

func (h *holdHandlers) release(c *gin.Context) {
	// A catch-all parameter, so that a correlation_id may hold "/" (sent
	// as %2F); gin hands it over with its leading slash.
	correlationID := strings.TrimPrefix(c.Param("correlation_id"), "/")
	if err := audit.CheckCorrelationID(correlationID); err != nil {
		answerInvalid(c, err)
		return
	}
	reason, ok := holdBody(c, h, audit.ParseHoldRelease)
	if !ok {
		return
	}
	by := principalName(c.Request.Context())
	ctx := c.Request.Context()
	rel, err := h.holds.ReleaseHold(ctx, correlationID, reason, by, func(rel store.Release) error {
		return h.record(ctx, selfaudit.TypeHoldReleased, "release", by, rel.CorrelationID, rel.ReleasedAt,
			map[string]any{"release_reason": rel.Reason, "released_by": by, "events_released": rel.EventsReleased})
	})
	switch {
	case errors.Is(err, store.ErrNotHeld):
		abortProblem(c, probNotFound, fmt.Sprintf("No legal hold on correlation_id %q is in force.", correlationID))
		return
	case err != nil:
		h.failed(c, "released", err)
		return
	}
	h.log.Info("legal hold released", zap.String("correlation_id", rel.CorrelationID), zap.String("principal", by),
		zap.Int64("events_released", rel.EventsReleased), zap.String("request_id", c.GetString(requestIDKey)))
	c.JSON(http.StatusOK, LegalHoldReleaseResponse{CorrelationID: rel.CorrelationID, EventsReleased: rel.EventsReleased,
		ReleasedBy: rel.ReleasedBy, ReleasedAt: rel.ReleasedAt})
}

// failed answers a hold operation that did not complete: nothing was
// placed or released, whichever of Kafka (the audit event) and PostgreSQL
// failed, so the client may retry.
func (h *holdHandlers) failed(c *gin.Context, what string, err error) {
	_ = c.Error(err)
	c.Header("Retry-After", retryAfterSeconds)
	if errors.Is(err, kafka.ErrUnavailable) {
		abortProblem(c, probKafka, "The audit event recording the hold could not be published, so the hold was not "+what+". Retry later.")
		return
	}
	abortProblem(c, probDatabase, "PostgreSQL could not be reached, so the hold was not "+what+". Retry later.")
}
