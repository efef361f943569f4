package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Notification channels (channel).
const (
	ChannelEmail     = "email"
	ChannelSlack     = "slack"
	ChannelPagerDuty = "pagerduty"
	ChannelWebhook   = "webhook"
	ChannelTeams     = "teams"
)

// Notification delivery statuses (status).
const (
	NotificationSent    = "sent"
	NotificationFailed  = "failed"
	NotificationPending = "pending"
)

// Notification is the audit record of one notification delivery, the
// NotificationAudit of the HTTP API. Optional fields are pointers, as in
// Event.
type Notification struct {
	RemediationID string `json:"remediation_id"` // 1–255 characters
	// NotificationID is unique: the server refuses a second record with
	// it (409), which also makes retries of one record idempotent.
	NotificationID string `json:"notification_id"` // 1–255 characters
	Recipient      string `json:"recipient"`       // 1–500 characters
	Channel        string `json:"channel"`         // one of the Channel constants
	MessageSummary string `json:"message_summary"` // 1–1000 characters
	Status         string `json:"status"`          // one of the Notification status constants
	// SentAt is when the notification went out; zero means the time of
	// Notify.
	SentAt          time.Time `json:"sent_at,omitzero"`
	DeliveryStatus  *string   `json:"delivery_status,omitempty"`  // ≤ 255 characters
	ErrorMessage    *string   `json:"error_message,omitempty"`    // ≤ 1000 characters
	EscalationLevel *int32    `json:"escalation_level,omitempty"` // 0–5
}

// Notify records one notification delivery (POST
// /api/v1/audit/notifications) and returns once the server accepted it:
// there is no batch endpoint for notifications, so unlike Send it waits.
// Like Send it validates first (a *ValidationError), and it retries network
// errors, timeouts, 429 and 5xx with the same backoff until ctx ends (then
// the error wraps the context's cause and the last failure). Another 4xx is
// returned as a *Problem; a 409 is one only on the first attempt: on a
// retry it means an earlier attempt of this very record was stored, and
// Notify returns nil. Notifications are not counted by Metrics. After Close
// it returns ErrClosed.
func (c *Client) Notify(ctx context.Context, n Notification) error {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	body, err := c.enc.encodeNotification(n)
	if err != nil {
		return err
	}
	attempts := 0
	// last is the latest failure ctx did not cause: when ctx ends during
	// an attempt, the one before says why nothing was recorded.
	var last error
	_, err = retry(c, ctx, "notification "+n.NotificationID, 0, func() (struct{}, error) {
		attempts++
		status, p, err := c.exchange(ctx, c.notificationsURL, body)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				last = err
			}
			return struct{}{}, err
		case p == nil, status == http.StatusConflict && attempts > 1:
			return struct{}{}, nil
		}
		return struct{}{}, backoff.Permanent(p)
	})
	var p *Problem
	if err == nil || errors.As(err, &p) || last == nil {
		return err
	}
	return fmt.Errorf("auditstream: notification %s not recorded: %w (last attempt: %w)", n.NotificationID, err, last)
}

// encodeNotification checks n and returns its canonical JSON, with sent_at
// filled in when n leaves it zero.
func (e *encoder) encodeNotification(n Notification) ([]byte, error) {
	now := e.now()
	if n.SentAt.IsZero() {
		n.SentAt = now
	}
	pre := invalidStrings([]namedString{
		{"remediation_id", &n.RemediationID}, {"notification_id", &n.NotificationID}, {"recipient", &n.Recipient},
		{"channel", &n.Channel}, {"message_summary", &n.MessageSummary}, {"status", &n.Status},
		{"delivery_status", n.DeliveryStatus}, {"error_message", n.ErrorMessage},
	})
	pre = append(pre, invalidTime("sent_at", &n.SentAt, now)...)
	raw, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("auditstream: encode notification: %w", err)
	}
	parsed, err := e.rules.ParseNotification(raw, now)
	if err := validationError(pre, err); err != nil {
		return nil, err
	}
	return parsed.AppendJSON(nil), nil
}
