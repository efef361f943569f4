package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/auditstream/auditstream/internal/audit"
)

// Validation holds the record rules that ingest-api and the writer must
// apply identically (SPEC 3: direct producers get the API's rules), so both
// binaries read them from the same settings. Their defaults are audit's
// (see vars).
type Validation struct {
	MaxEventDataBytes int           `name:"max-event-data-bytes" env:"MAX_EVENT_DATA_BYTES" default:"${default_max_event_data_bytes}" help:"Largest serialized event_data (bytes)."`
	MaxFutureSkew     time.Duration `name:"max-future-skew" env:"MAX_FUTURE_SKEW" default:"${default_max_future_skew}" help:"How far after acceptance an event_timestamp may lie (clock skew allowance)."`
	EventCategories   []string      `name:"event-categories" env:"EVENT_CATEGORIES" sep:"," default:"${default_event_categories}" help:"Allowed event_category values."`
}

// Rules returns the validation rules.
func (v Validation) Rules() audit.Rules {
	return audit.Rules{
		MaxFutureSkew:     v.MaxFutureSkew,
		Categories:        v.EventCategories,
		MaxEventDataBytes: v.MaxEventDataBytes,
	}
}

// Vars are the defaults the struct tags name as ${...}, taken from the
// packages that own them so that each is written once. Parse passes them;
// any other kong parser of these structs needs them too.
func Vars() kong.Vars {
	return kong.Vars{
		"default_max_event_data_bytes": strconv.Itoa(audit.DefaultMaxEventDataBytes),
		"default_max_future_skew":      shortDuration(audit.DefaultMaxFutureSkew),
		"default_event_categories":     strings.Join(audit.DefaultCategories(), ","),
		"default_max_batch_size":       strconv.Itoa(audit.DefaultMaxBatchSize),
		"default_retention_days":       strconv.Itoa(audit.MaxRetentionDays),
	}
}

// shortDuration prints d as a person writes it in a setting: 5m, not 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
