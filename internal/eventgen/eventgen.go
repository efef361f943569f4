// Package eventgen makes realistic, valid audit events for the benchmarks
// (cmd/auditbench and the writer's Go benchmarks), so that every stage is
// measured with records of the size and shape production sends: the SPEC's
// seven categories with about fifty event types, most optional fields set,
// a few hundred bytes of event_data (canonical JSON of 550 to 800 bytes).
// The values depend only on the seed; ids and timestamps on the clock too.
package eventgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/auditstream/auditstream/internal/audit"
)

// Type is an event type with the category and action that go with it.
type Type struct{ Name, Category, Action string }

// Types returns the ~50 event types of the generated data: for each of the
// SPEC's 7 categories, a handful of "<category>.<object>.<action>".
func Types() []Type {
	objects := map[string][]string{
		"gateway":          {"signal.received", "signal.rejected", "request.authenticated", "request.throttled", "webhook.received", "signal.deduplicated", "route.matched"},
		"notification":     {"message.sent", "message.failed", "message.escalated", "channel.selected", "digest.sent", "message.acknowledged", "template.rendered"},
		"analysis":         {"investigation.started", "investigation.completed", "rootcause.identified", "model.invoked", "evidence.collected", "hypothesis.rejected", "report.generated"},
		"signalprocessing": {"signal.enriched", "signal.classified", "signal.correlated", "signal.suppressed", "storm.detected", "priority.assigned", "labels.normalized"},
		"workflow":         {"workflow.selected", "workflow.started", "workflow.completed", "step.started", "step.completed", "approval.requested", "approval.granted"},
		"execution":        {"action.started", "action.completed", "action.failed", "rollback.started", "rollback.completed", "dryrun.completed", "command.executed", "retry.scheduled"},
		"orchestration":    {"remediation.created", "remediation.completed", "remediation.timedout", "lock.acquired", "lock.released", "phase.changed", "child.spawned", "cooldown.applied"},
	}
	var types []Type
	for _, cat := range audit.DefaultCategories() {
		for _, o := range objects[cat] {
			types = append(types, Type{Name: cat + "." + o, Category: cat, Action: o[strings.LastIndexByte(o, '.')+1:]})
		}
	}
	return types
}

// Options shape the generated events.
type Options struct {
	// Seed selects the values; the same seed gives the same events.
	Seed uint64
	// IDs gives each event a UUIDv7 event_id, as the API assigns at
	// acceptance (or a client that names its events); without, the
	// events are request bodies, and the API assigns them.
	IDs bool
	// Spread scatters event_timestamp uniformly over that long before now;
	// zero: every event is stamped now.
	Spread time.Duration
	// Parents makes about half of the events children of the one before
	// (parent_event_id). It needs IDs.
	Parents bool
	// Traces, when positive, gives correlation ids as requests do: the
	// events of one correlation_id come close together, Traces of them in
	// flight at any time (1 to 15 events each, 8 on average). Zero: each
	// event's correlation_id is drawn at random from n/8, so a chain's
	// events are spread over all n, the worst case for the hash chain's
	// heads (a batch moves nearly one head per event).
	Traces int
}

// Events returns n events: outcomes 90% success, 7% failure, 3% pending;
// about 8 events per correlation_id; a service actor of the event's
// category, a resource, namespace, cluster, severity and duration each.
func Events(n int, o Options) []audit.Event {
	r := rand.New(rand.NewPCG(o.Seed, 0xbe7c4))
	types := Types()
	namespaces := []string{"prod", "staging", "payments", "checkout", "kube-system", "monitoring", "search", "identity"}
	clusters := []string{"eu-west-1", "us-east-1", "ap-south-1"}
	severities := []string{"critical", "warning", "info"}
	resources := []string{"Signal", "RemediationRequest", "WorkflowExecution", "AIAnalysis", "Notification", "Pod", "Deployment"}
	alerts := []string{"HighCPU", "HighMemory", "PodCrashLooping", "DiskPressure", "KubeletDown", "ErrorRateHigh"}
	ptr := func(s string) *string { return &s }
	now := time.Now().UTC()
	correlationID := func() string { return fmt.Sprintf("rr-bench-%07d", r.IntN(n/8+1)) }
	if o.Traces > 0 {
		type trace struct {
			id   string
			left int
		}
		started := 0
		start := func() trace {
			started++
			return trace{id: fmt.Sprintf("rr-trace-%07d", started), left: 1 + r.IntN(15)}
		}
		inFlight := make([]trace, o.Traces)
		for i := range inFlight {
			inFlight[i] = start()
		}
		correlationID = func() string {
			t := &inFlight[r.IntN(len(inFlight))]
			id := t.id
			if t.left--; t.left == 0 {
				*t = start()
			}
			return id
		}
	}
	events := make([]audit.Event, n)
	for i := range events {
		t := types[r.IntN(len(types))]
		outcome := "success"
		switch x := r.IntN(100); {
		case x < 7:
			outcome = "failure"
		case x < 10:
			outcome = "pending"
		}
		ts := now
		if o.Spread > 0 {
			ts = now.Add(-time.Duration(r.Int64N(int64(o.Spread))))
		}
		fp := fmt.Sprintf("fp-%010x", r.Uint64()>>24)
		alert := alerts[r.IntN(len(alerts))]
		dur := r.Int64N(30_000)
		e := audit.Event{
			Version: "1.0", EventType: t.Name, EventTimestamp: ts.Truncate(time.Microsecond),
			EventCategory: t.Category, EventAction: t.Action, EventOutcome: outcome,
			CorrelationID: correlationID(),
			ActorType:     ptr("service"), ActorID: ptr(t.Category + "-controller"),
			ResourceType: ptr(resources[r.IntN(len(resources))]), ResourceID: ptr(fp),
			Namespace: ptr(namespaces[r.IntN(len(namespaces))]), ClusterName: ptr(clusters[r.IntN(len(clusters))]),
			Severity: ptr(severities[r.IntN(len(severities))]), DurationMS: &dur,
			EventData: fmt.Appendf(nil, `{"signal":{"fingerprint":%q,"labels":{"alertname":%q,"pod":"%s-%05x-%05x"},"value":%.2f},`+
				`"source":"prometheus","message":"%s for %dm"}`,
				fp, alert, strings.ToLower(alert), r.IntN(1<<20), r.IntN(1<<20), r.Float64()*100, alert, 1+r.IntN(30)),
		}
		if o.IDs {
			e.EventID = uuid.Must(uuid.NewV7())
		}
		if o.Parents && i > 0 && r.IntN(2) == 0 {
			parent := events[i-1].EventID
			e.ParentEventID = &parent
		}
		events[i] = e
	}
	return events
}
