package writer

import (
	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/provenance"
)

// submitters decides a record's submitted_by from its signed principal
// header (internal/provenance).
type submitters interface {
	SubmittedBy(headers []kafka.Header, id string, value []byte) string
	// FromSystem says whether that submitter is auditstream itself, the
	// only one whose events of category auditstream are stored.
	FromSystem(submittedBy string) bool
}

// submittedBy is who submitted msg, whose id the API would have signed is
// id: the event_id in its value (none when it had none: the API always
// sends one, so such a record did not come from the API) or its
// notification_id.
func (w *Writer) submittedBy(msg *kafka.Message, id string) *string {
	s := w.cfg.Submitters.SubmittedBy(msg.Headers, id, msg.Value)
	w.metrics.submitters.WithLabelValues(provenance.Result(s)).Inc()
	return &s
}

// signedID is the id the API signs an event under: the event_id its value
// carries, in canonical form.
func signedID(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}
