package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/client"
)

func validNotification() client.Notification {
	return client.Notification{
		RemediationID:  "remediation-123",
		NotificationID: "notification-456",
		Recipient:      "ops-team@example.com",
		Channel:        client.ChannelEmail,
		MessageSummary: "Incident alert: High CPU usage on pod xyz",
		Status:         client.NotificationSent,
	}
}

func TestNotifyValidates(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*client.Notification)
		want   map[string]string
	}{
		{"empty", func(n *client.Notification) { *n = client.Notification{} }, map[string]string{
			"remediation_id":  "must not be empty",
			"notification_id": "must not be empty",
			"recipient":       "must not be empty",
			"channel":         "must be one of: email, slack, pagerduty, webhook, teams",
			"message_summary": "must not be empty",
			"status":          "must be one of: sent, failed, pending",
		}},
		{"limits", func(n *client.Notification) {
			n.EscalationLevel = new(int32(6))
			n.ErrorMessage = new(strings.Repeat("e", 1001))
			n.Recipient = "\xff"
			n.SentAt = time.Now().Add(time.Hour)
		}, map[string]string{
			"recipient":        "must be valid UTF-8",
			"sent_at":          "must not be more than 5m0s in the future",
			"error_message":    "must be at most 1000 characters",
			"escalation_level": "must be an integer between 0 and 5",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			c := api.client(t)
			n := validNotification()
			tt.modify(&n)
			var verr *client.ValidationError
			require.ErrorAs(t, c.Notify(t.Context(), n), &verr)
			require.Equal(t, tt.want, verr.Fields())
			require.Empty(t, api.got())
		})
	}
}

// TestNotify checks the answers to a notification: accepted (201, 202),
// retried (503 with Retry-After, 500), final (400, a 409 to the first
// attempt), and a 409 to a retry, which is the record's own earlier attempt.
func TestNotify(t *testing.T) {
	conflict := reply{status: http.StatusConflict, body: `{"type":"https://auditstream.dev/problems/duplicate-notification","title":"Notification already recorded","status":409}`}
	unavailable := reply{status: http.StatusServiceUnavailable, header: map[string]string{"Retry-After": "0"}}
	tests := []struct {
		name    string
		replies []reply // the last one repeats
		status  int     // of the *Problem returned; 0: nil error
		tries   int
	}{
		{"201", []reply{{status: http.StatusCreated, body: `{"id":1}`}}, 0, 1},
		{"202", []reply{{status: http.StatusAccepted, body: `{"status":"accepted"}`}}, 0, 1},
		{"503 then 201", []reply{unavailable, {status: 500}, created}, 0, 3},
		{"400", []reply{{status: http.StatusBadRequest}}, http.StatusBadRequest, 1},
		{"409 first", []reply{conflict}, http.StatusConflict, 1},
		{"409 on a retry", []reply{unavailable, conflict}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			api.setRespond(func(_ *http.Request, n int) reply { return tt.replies[min(n, len(tt.replies)-1)] })
			c := api.client(t)
			n := validNotification()
			n.DeliveryStatus = new("delivered")
			err := c.Notify(t.Context(), n)
			if tt.status == 0 {
				require.NoError(t, err)
			} else {
				var p *client.Problem
				require.ErrorAs(t, err, &p)
				require.Equal(t, tt.status, p.Status)
			}
			got := api.got()
			require.Len(t, got, tt.tries)
			var sent map[string]any
			require.NoError(t, json.Unmarshal(got[0].events[0], &sent))
			require.Equal(t, "notification-456", sent["notification_id"])
			require.Equal(t, "delivered", sent["delivery_status"])
			require.NotEmpty(t, sent["sent_at"], "a zero SentAt is the time of Notify")
		})
	}
}

func TestNotifyGivesUpWithItsContext(t *testing.T) {
	api := newFakeAPI(t)
	api.setRespond(func(*http.Request, int) reply { return reply{status: http.StatusBadGateway} })
	c := api.client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := c.Notify(ctx, validNotification())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var p *client.Problem
	require.ErrorAs(t, err, &p, "the last failure is named")
	require.Equal(t, http.StatusBadGateway, p.Status)
	require.Contains(t, err.Error(), "notification notification-456 not recorded")

	require.NoError(t, c.Close(t.Context()))
	require.ErrorIs(t, c.Notify(t.Context(), validNotification()), client.ErrClosed)
}
