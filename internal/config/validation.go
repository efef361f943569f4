package config

import (
	"time"

	"github.com/auditstream/auditstream/internal/audit"
)

// Validation holds the record rules that ingest-api and the writer must
// apply identically (SPEC 3: direct producers get the API's rules), so both
// binaries read them from the same settings.
type Validation struct {
	MaxEventDataBytes int           `name:"max-event-data-bytes" env:"MAX_EVENT_DATA_BYTES" default:"65536" help:"Largest serialized event_data (bytes)."`
	MaxFutureSkew     time.Duration `name:"max-future-skew" env:"MAX_FUTURE_SKEW" default:"5m" help:"How far after acceptance an event_timestamp may lie (clock skew allowance)."`
	EventCategories   []string      `name:"event-categories" env:"EVENT_CATEGORIES" sep:"," default:"gateway,notification,analysis,signalprocessing,workflow,execution,orchestration" help:"Allowed event_category values."`
}

// Rules returns the validation rules; maxBatch is the API's batch limit
// (the writer sees records one by one and passes the default).
func (v Validation) Rules(maxBatch int) audit.Rules {
	return audit.Rules{
		MaxFutureSkew:     v.MaxFutureSkew,
		Categories:        v.EventCategories,
		MaxEventDataBytes: v.MaxEventDataBytes,
		MaxBatchSize:      maxBatch,
	}
}
