package audit

import "crypto/sha256"

// ContentDigest returns the SHA-256 of the event's content, which the store
// keeps with its event_id (audit_event_ids.content_sha256) so that a record
// reusing a stored event_id is told apart from a redelivery of it:
//
//	content_sha256 = SHA-256(the event encoded as MarshalJSON writes it)
//
// that is the canonical Kafka value: every field of the table that comes
// from the record (Source Request; never what the system sets, such as
// event_date), event_id first and event_data last, the others in table
// order; absent optional fields left out; event_timestamp in UTC with up to
// microsecond digits and no trailing zeros; strings with the encoder's
// escaping; event_data compacted but otherwise as given. Two records whose
// event_data differ only in member order or number spelling therefore
// differ in content, which errs on the side of reporting a conflict rather
// than dropping one.
//
// Stored digests outlive any code change: the encoding above is fixed
// (TestContentDigestIsStable pins it). A field added to the table changes
// the digest only of events that carry it, as absent fields are left out.
func (e *Event) ContentDigest() [sha256.Size]byte {
	var buf [1024]byte
	return sha256.Sum256(e.appendJSON(buf[:0], recordOrder, false))
}
