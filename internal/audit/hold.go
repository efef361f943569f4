package audit

import "unicode/utf8"

// MaxHoldReason is the most characters of a legal hold's reason and of its
// release_reason: a paragraph naming the matter and who asked, as
// legal_holds' varchar(1000) stores it. The seed system documents no
// limit; an unbounded one would let a hold carry megabytes into every
// listing.
const MaxHoldReason = 1000

// maxCorrelationID is correlation_id's limit (its entry in eventFields).
const maxCorrelationID = 255

// LegalHold is a validated POST /api/v1/audit/legal-hold body.
type LegalHold struct {
	CorrelationID string
	Reason        string
}

// ParseLegalHold validates {correlation_id, reason}: both required, at most
// 255 and MaxHoldReason characters, with the body rules of every request
// (SPEC 2.1). The error is a FieldErrors or a *BodyError.
func ParseLegalHold(raw []byte) (LegalHold, error) {
	var h LegalHold
	err := parseSmall(raw, []string{"correlation_id", "reason"}, func(p *parser, v [][]byte) {
		h.CorrelationID, _ = p.text("correlation_id", v[0], true, maxCorrelationID)
		h.Reason, _ = p.text("reason", v[1], true, MaxHoldReason)
	})
	return h, err
}

// ParseHoldRelease validates the DELETE /api/v1/audit/legal-hold body,
// {release_reason}, required like a placement's reason, and returns it.
func ParseHoldRelease(raw []byte) (string, error) {
	var reason string
	err := parseSmall(raw, []string{"release_reason"}, func(p *parser, v [][]byte) {
		reason, _ = p.text("release_reason", v[0], true, MaxHoldReason)
	})
	return reason, err
}

// CheckCorrelationID validates a correlation_id that arrives outside a
// body (a path parameter), as a body's would be.
func CheckCorrelationID(s string) error {
	p := parser{index: -1}
	if utf8.ValidString(s) {
		// Quoted, a NUL becomes the \u0000 the parser refuses.
		p.text("correlation_id", appendString(nil, s), true, maxCorrelationID)
	} else {
		p.fail("correlation_id", ReasonUTF8, msgUTF8)
	}
	if len(p.errs) > 0 {
		return p.errs
	}
	return nil
}

// parseSmall checks a JSON object with the given members and lets fields
// validate their raw values (nil when absent), in the order of names.
func parseSmall(raw []byte, names []string, fields func(p *parser, v [][]byte)) error {
	utf8OK, berr := prepare(raw, '{')
	if berr != nil {
		return berr
	}
	p := parser{utf8OK: utf8OK, index: -1}
	v := make([][]byte, len(names))
	p.collect(raw, func(k []byte) int {
		for i, n := range names {
			if n == string(k) {
				return i
			}
		}
		return -1
	}, v)
	if p.body != nil {
		return p.body
	}
	fields(&p, v)
	if len(p.errs) > 0 {
		return p.errs
	}
	return nil
}
