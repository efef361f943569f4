package audit

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Rules are the configurable validation limits. The zero value is not
// usable: start from DefaultRules and call Validate after changing it.
type Rules struct {
	// MaxFutureSkew is how far event_timestamp (or a notification's sent_at)
	// may be after the moment the record was accepted. Zero tolerates no
	// clock skew at all.
	MaxFutureSkew time.Duration
	// Categories is the allowed set of event_category values.
	Categories []string
	// MaxEventDataBytes limits the size of event_data once compacted (what
	// is stored).
	MaxEventDataBytes int
	// AcceptSystemCategory lets event_category be SystemCategory. Only the
	// writer sets it, and stores such a record only when it comes from
	// SystemPrincipal; everywhere else (the API, the client) the category
	// is refused as reserved. It is not a setting.
	AcceptSystemCategory bool
}

// The system's own events (SPEC 10): auditstream records what it does to
// the audit trail itself (retention drops, legal holds) as audit events of
// this category, submitted by this principal, which no credential may
// take (internal/auth refuses it).
const (
	SystemCategory  = "auditstream"
	SystemPrincipal = "system:auditstream"
)

// Per-event retention bounds (SPEC 10): retention_days of an event, and
// the store's RETENTION_DAYS, lie in this range; the longest is seven
// years, the default.
const (
	MinRetentionDays = 1
	MaxRetentionDays = 2555
)

// Defaults (SPEC 2.2, 2.3). The binaries' settings default to these.
const (
	// DefaultMaxFutureSkew tolerates producer clocks running a few minutes
	// ahead without letting "future" events sort above genuinely new ones.
	DefaultMaxFutureSkew = 5 * time.Minute
	// DefaultMaxEventDataBytes: 64 KiB keeps a single record far below the
	// 1 MiB request and Kafka message limits.
	DefaultMaxEventDataBytes = 64 << 10
	// DefaultMaxBatchSize is the API's default limit of ParseEventBatch:
	// 5000 events of typical size fit in the 16 MiB batch body limit.
	DefaultMaxBatchSize = 5000
)

// DefaultCategories returns the SPEC's event categories (a fresh slice).
func DefaultCategories() []string {
	return []string{"gateway", "notification", "analysis", "signalprocessing", "workflow", "execution", "orchestration"}
}

// Enumerations fixed by the SPEC.
var (
	eventOutcomes        = []string{"success", "failure", "pending"}
	notificationChannels = []string{"email", "slack", "pagerduty", "webhook", "teams"}
	notificationStatuses = []string{"sent", "failed", "pending"}
)

// DefaultRules returns the SPEC defaults.
func DefaultRules() Rules {
	return Rules{
		MaxFutureSkew:     DefaultMaxFutureSkew,
		Categories:        DefaultCategories(),
		MaxEventDataBytes: DefaultMaxEventDataBytes,
	}
}

// maxCategoryLen is the size of the event_category column: a longer allowed
// category would pass validation and then fail every COPY of its events.
var maxCategoryLen = func() int {
	for i := range eventFields {
		if eventFields[i].Name == "event_category" {
			return eventFields[i].MaxLen
		}
	}
	panic("audit: the field table has no event_category")
}()

// Validate checks the configuration: non-negative skew, a positive limit and
// a non-empty set of distinct, non-empty, valid UTF-8 categories that fit
// the event_category column (100 characters), none of them SystemCategory.
func (r Rules) Validate() error {
	var errs []error
	if r.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("max future skew must be >= 0, got %s", r.MaxFutureSkew))
	}
	if r.MaxEventDataBytes <= 0 {
		errs = append(errs, fmt.Errorf("max event_data bytes must be > 0, got %d", r.MaxEventDataBytes))
	}
	if len(r.Categories) == 0 {
		errs = append(errs, errors.New("event categories must not be empty"))
	}
	seen := make(map[string]bool, len(r.Categories))
	for _, c := range r.Categories {
		switch {
		case c == "":
			errs = append(errs, errors.New("event categories must not contain an empty name"))
		case !utf8.ValidString(c) || utf8.RuneCountInString(c) > maxCategoryLen:
			errs = append(errs, fmt.Errorf("event category %q must be valid UTF-8 of at most %d characters", c, maxCategoryLen))
		case seen[c]:
			errs = append(errs, fmt.Errorf("event category %q is listed twice", c))
		case c == SystemCategory:
			errs = append(errs, fmt.Errorf("event category %q is reserved for auditstream's own events and cannot be configured", c))
		}
		seen[c] = true
	}
	return errors.Join(errs...)
}
