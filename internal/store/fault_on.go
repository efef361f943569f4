//go:build faultinject

package store

import (
	"math"

	"github.com/auditstream/auditstream/internal/audit"
)

func injectRowFault(e *audit.Event, row []any) {
	if e.EventType != FaultUnencodable {
		return
	}
	for i, f := range copyFields {
		if f.Kind == audit.KindOptCount {
			row[i] = uint64(math.MaxUint64)
		}
	}
}
