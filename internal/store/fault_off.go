//go:build !faultinject

package store

import "github.com/auditstream/auditstream/internal/audit"

func injectRowFault(*audit.Event, []any) {}
