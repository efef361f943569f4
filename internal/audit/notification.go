package audit

import (
	"crypto/sha256"
	"strconv"
	"time"
)

// Notification is a validated notification delivery audit record
// (NotificationAudit), with the values the API assigns.
type Notification struct {
	// ID is assigned by the API; 0 = not assigned (direct producers): omitted
	// from JSON.
	ID              int64
	RemediationID   string
	NotificationID  string
	Recipient       string
	Channel         string
	MessageSummary  string
	Status          string
	SentAt          time.Time // UTC, truncated to microseconds
	DeliveryStatus  *string
	ErrorMessage    *string
	EscalationLevel *int32
	// CreatedAt and UpdatedAt are assigned by the API; zero = not assigned:
	// omitted from JSON. UTC, truncated to microseconds.
	CreatedAt, UpdatedAt time.Time
	// SubmittedBy is decided by the writer, as Event.SubmittedBy; it is
	// neither parsed nor written to JSON (the record's value and the 201
	// answer).
	SubmittedBy *string
}

// MarshalJSON returns the NotificationAuditResponse shape: the
// NotificationAudit fields plus id, created_at and updated_at (each omitted
// when not assigned). The API answers 201 with it and publishes it to Kafka.
// Times are UTC with up to microsecond digits.
func (n Notification) MarshalJSON() ([]byte, error) {
	return n.AppendJSON(make([]byte, 0, 512)), nil
}

// AppendJSON appends the MarshalJSON encoding of n to dst.
func (n *Notification) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if n.ID != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendInt(dst, n.ID, 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"remediation_id":`...)
	dst = appendString(dst, n.RemediationID)
	dst = append(dst, `,"notification_id":`...)
	dst = appendString(dst, n.NotificationID)
	dst = append(dst, `,"recipient":`...)
	dst = appendString(dst, n.Recipient)
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, n.Channel)
	dst = append(dst, `,"message_summary":`...)
	dst = appendString(dst, n.MessageSummary)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, n.Status)
	dst = append(dst, `,"sent_at":`...)
	dst = appendTime(dst, n.SentAt)
	dst = appendOptString(dst, `,"delivery_status":`, n.DeliveryStatus)
	dst = appendOptString(dst, `,"error_message":`, n.ErrorMessage)
	if n.EscalationLevel != nil {
		dst = append(dst, `,"escalation_level":`...)
		dst = strconv.AppendInt(dst, int64(*n.EscalationLevel), 10)
	}
	if !n.CreatedAt.IsZero() {
		dst = append(dst, `,"created_at":`...)
		dst = appendTime(dst, n.CreatedAt)
	}
	if !n.UpdatedAt.IsZero() {
		dst = append(dst, `,"updated_at":`...)
		dst = appendTime(dst, n.UpdatedAt)
	}
	return append(dst, '}')
}

func appendOptString(dst []byte, prefix string, s *string) []byte {
	if s == nil {
		return dst
	}
	dst = append(dst, prefix...)
	return appendString(dst, *s)
}

// ContentDigest is the SHA-256 of who submits n (the principal stored as
// submitted_by) and n's canonical record without the values the API
// assigns (id, created_at, updated_at): two requests carry the same
// notification exactly when their digests are equal, however their JSON
// was spaced or ordered. The same record from another principal is another
// notification, since what is stored would differ.
func (n *Notification) ContentDigest(submittedBy string) [sha256.Size]byte {
	client := *n
	client.ID, client.CreatedAt, client.UpdatedAt = 0, time.Time{}, time.Time{}
	b := append(append(make([]byte, 0, 512), submittedBy...), 0)
	return sha256.Sum256(client.AppendJSON(b))
}

// ReservationState is what reserving a notification_id found.
type ReservationState uint8

const (
	// Reserved: the notification_id was free; the request holds it with a
	// new id and its own created_at.
	Reserved ReservationState = iota + 1
	// Retried: an earlier request with the same content holds it (a retry,
	// or the same record sent twice at once): the id and created_at are
	// that request's, so every answer is the one stored.
	Retried
	// HeldByOther: a request with other content holds it and may still be
	// stored (409).
	HeldByOther
	// Stored: a record with this notification_id is stored (409).
	Stored
)

// Reservation is the answer to reserving a notification_id: for Reserved
// and Retried, the id and created_at the record is published with.
type Reservation struct {
	State     ReservationState
	ID        int64
	CreatedAt time.Time
}
