package audit

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func notificationFieldCases() []fieldCase {
	var cs []fieldCase
	cs = append(cs, stringCases("remediation_id", true, 255)...)
	cs = append(cs, stringCases("notification_id", true, 255)...)
	cs = append(cs, stringCases("recipient", true, 500)...)
	cs = append(cs, enumCases("channel", []string{"email", "slack", "pagerduty", "webhook", "teams"})...)
	cs = append(cs, stringCases("message_summary", true, 1000)...)
	cs = append(cs, enumCases("status", []string{"sent", "failed", "pending"})...)
	cs = append(cs, dateTimeCases("sent_at", true, true)...)
	cs = append(cs, stringCases("delivery_status", false, 255)...)
	cs = append(cs, stringCases("error_message", false, 1000)...)
	const lvl = "must be an integer between 0 and 5"
	cs = append(cs, intCases("escalation_level", lvl, 0, 5, lvl, lvl)...)
	cs = append(cs, fieldCase{"six", "escalation_level", `6`, fe("escalation_level", ReasonRange, lvl)})
	cs = append(cs, intCases("id", msgIDPositive, 1, 1<<63-1, msgIDPositive, "must be at most 9223372036854775807")...)
	cs = append(cs, dateTimeCases("created_at", false, false)...)
	cs = append(cs, dateTimeCases("updated_at", false, false)...)
	cs = append(cs, fieldCase{"far future allowed", "created_at", `"2099-01-01T00:00:00Z"`, FieldError{}})
	return cs
}

func TestParseNotificationFields(t *testing.T) {
	r := DefaultRules()
	for _, tc := range notificationFieldCases() {
		t.Run(tc.field+"/"+tc.name, func(t *testing.T) {
			raw := object(baseNotification, tc.field, tc.raw)
			n, err := r.ParseNotification([]byte(raw), acceptedAt)
			if tc.want == (FieldError{}) {
				require.NoError(t, err)
				require.NotEmpty(t, n.NotificationID)
				return
			}
			var fes FieldErrors
			require.True(t, errors.As(err, &fes), "want FieldErrors, got %v", err)
			require.Equal(t, FieldErrors{tc.want}, fes)
			require.Equal(t, Notification{}, n)
		})
	}
}

func TestParseNotificationBodyErrors(t *testing.T) {
	r := DefaultRules()
	_, err := r.ParseNotification([]byte(`[]`), acceptedAt)
	require.ErrorIs(t, err, ErrNotObject)
	_, err = r.ParseNotification([]byte(`{"a":`), acceptedAt)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = r.ParseNotification([]byte(object(baseNotification, "x", `"\u0000"`)), acceptedAt)
	require.ErrorIs(t, err, ErrNUL)
}

func TestNotificationJSON(t *testing.T) {
	r := DefaultRules()
	n, err := r.ParseNotification([]byte(object(baseNotification, "", "")), acceptedAt)
	require.NoError(t, err)
	require.Equal(t, Notification{
		RemediationID: "remediation-123", NotificationID: "notification-456", Recipient: "ops-team@example.com",
		Channel: "email", MessageSummary: "Incident alert", Status: "sent",
		SentAt: time.Date(2025, 11, 3, 12, 0, 0, 0, time.UTC),
	}, n)
	out, err := n.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `{"remediation_id":"remediation-123","notification_id":"notification-456","recipient":"ops-team@example.com",`+
		`"channel":"email","message_summary":"Incident alert","status":"sent","sent_at":"2025-11-03T12:00:00Z"}`, string(out))

	// What the API assigns, then publishes and answers.
	ds, em, lvl := "200 OK", "", int32(0)
	n.ID = 7_000_000_000_001
	n.CreatedAt = time.Date(2025, 12, 13, 3, 0, 0, 123456000, time.UTC)
	n.UpdatedAt = n.CreatedAt
	n.DeliveryStatus, n.ErrorMessage, n.EscalationLevel = &ds, &em, &lvl
	out, err = n.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `{"id":7000000000001,"remediation_id":"remediation-123","notification_id":"notification-456","recipient":"ops-team@example.com",`+
		`"channel":"email","message_summary":"Incident alert","status":"sent","sent_at":"2025-11-03T12:00:00Z",`+
		`"delivery_status":"200 OK","error_message":"","escalation_level":0,`+
		`"created_at":"2025-12-13T03:00:00.123456Z","updated_at":"2025-12-13T03:00:00.123456Z"}`, string(out))

	// The writer reads back what the API published.
	again, err := r.ParseNotification(out, acceptedAt)
	require.NoError(t, err)
	require.Equal(t, n, again)
}

// TestNotificationContentDigest: the digest that tells a retry from another
// record ignores how the JSON was written and what the API assigns, and
// tells apart other content and another submitter.
func TestNotificationContentDigest(t *testing.T) {
	r := DefaultRules()
	parse := func(raw string) Notification {
		n, err := r.ParseNotification([]byte(raw), acceptedAt)
		require.NoError(t, err)
		return n
	}
	base := parse(object(baseNotification, "", ""))
	reordered := parse(`{ "sent_at": "2025-11-03T12:00:00Z", "status": "sent", "message_summary": "Incident alert",
		"channel": "email", "recipient": "ops-team@example.com", "notification_id": "notification-456", "remediation_id": "remediation-123" }`)
	assigned := base
	assigned.ID, assigned.CreatedAt, assigned.UpdatedAt = 42, acceptedAt, acceptedAt
	other := parse(object(baseNotification, "recipient", `"someone@example.com"`))

	require.Equal(t, base.ContentDigest("svc"), reordered.ContentDigest("svc"), "spacing, order, seconds")
	require.Equal(t, base.ContentDigest("svc"), assigned.ContentDigest("svc"), "id and timestamps are the API's")
	require.NotEqual(t, base.ContentDigest("svc"), other.ContentDigest("svc"))
	require.NotEqual(t, base.ContentDigest("svc"), base.ContentDigest("other-svc"))
}
